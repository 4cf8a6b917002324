"""Reading series back from chunks: step order, step ranges at full resolution, live appends, spikes kept."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ml_dash.server.series.downsample import minmax_indices, series_result


async def new_series(storage, batches):
    """An experiment whose stream 's' got ``batches`` (lists of (step, value)) in order; returns its id."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    for i, batch in enumerate(batches):
        events = [{"timestamp": 1000.0 + s, "step": s, "metrics": {"m": v}} for s, v in batch]
        await storage.apply_batch(experiment_id, None, "metrics", "s", i, i + 1, events)
    return experiment_id


async def test_spike_among_a_million_points_survives(storage):
    """One spike in 1M points is among the ≤ 2000 points of a 1000-bucket answer."""
    n = 1_000_000
    batches = [[(s, 0.0) for s in range(k, k + 100_000)] for k in range(0, n, 100_000)]
    batches[4][56_789] = (456_789, 1e6)
    experiment_id = await new_series(storage, batches)
    series = await storage.metric_series(experiment_id, "m", None, None)
    answer = series_result("m", series, 1000, nonfinite_as_text=True)
    assert answer["count"] == n and len(answer["values"]) <= 2000
    assert answer["max"] == 1e6 and 456_789 in answer["steps"] and 1e6 in answer["values"]


async def test_step_range_is_full_resolution(storage):
    """A zoom returns every point in the range, across chunk boundaries, and nothing outside it."""
    experiment_id = await new_series(storage, [[(s, s * 2.0) for s in range(k, k + 1000)] for k in range(0, 5000, 1000)])
    series = await storage.metric_series(experiment_id, "m", 1500, 3499)
    assert series.steps.tolist() == list(range(1500, 3500)) and series.values[0] == 3000.0
    assert len((await storage.metric_series(experiment_id, "m", 4999, None)).steps) == 1
    assert len((await storage.metric_series(experiment_id, "m", 6000, 7000)).steps) == 0


async def test_out_of_order_batches_read_in_step_order(storage):
    """Steps arriving out of order (across and within batches) read sorted; equal steps keep arrival order."""
    experiment_id = await new_series(storage, [[(10, 1.0), (11, 2.0)], [(3, 3.0), (12, 4.0), (10, 5.0)]])
    series = await storage.metric_series(experiment_id, "m", None, None)
    assert series.steps.tolist() == [3, 10, 10, 11, 12] and series.values.tolist() == [3, 1, 5, 2, 4]
    assert (await storage.metric_series(experiment_id, "m", 10, 11)).values.tolist() == [1, 5, 2]


async def test_live_appends_are_seen_by_the_next_read(storage):
    """A dashboard polling a growing run sees every new point, whether or not it was merged into a tail chunk."""
    experiment_id = await new_series(storage, [[(0, 0.0)]])
    for i in range(1, 30):
        await storage.apply_batch(experiment_id, None, "metrics", "s", i, i + 1,
                                  [{"timestamp": 1.0, "step": i, "metrics": {"m": float(i)}}])
        series = await storage.metric_series(experiment_id, "m", None, None)
        assert series.values.tolist() == [float(s) for s in range(i + 1)]
        assert (await storage.last_metrics(experiment_id)) == {"m": float(i)}


async def test_step_times_sample_the_whole_series(storage):
    """About max_points (step, time) anchors, first and last included, in step order."""
    experiment_id = await new_series(storage, [[(s, 0.0) for s in range(k, k + 100)] for k in (500, 0, 100)])
    steps, stamps = await storage.metric_step_times(experiment_id, "m", 10)
    assert steps[0] == 0 and steps[-1] == 599 and np.all(np.diff(steps) > 0) and len(steps) <= 11
    assert np.array_equal(stamps, steps + 1000.0)


async def test_small_batches_are_merged_into_few_chunks(tmp_path, monkeypatch):
    """SQLite: a live run's one-point batches collect in a tail chunk instead of one row each."""
    from ml_dash.server.storage.sqlite import storage as _sqlite

    MERGE_BELOW = 16  # each batch is an fsync'd transaction: keep the test short
    monkeypatch.setattr(_sqlite, "MERGE_BELOW", MERGE_BELOW)
    storage = _sqlite.SQLiteStorage(str(tmp_path / "db.sqlite3"))
    await storage.open()
    try:
        experiment_id = await new_series(storage, [[(s, float(s))] for s in range(MERGE_BELOW + 10)])
        series = await storage.metric_series(experiment_id, "m", None, None)
        assert series.steps.tolist() == list(range(MERGE_BELOW + 10))
    finally:
        await storage.close()
    chunks = sqlite3.connect(tmp_path / "db.sqlite3").execute("SELECT n FROM metric_chunks ORDER BY pk").fetchall()
    assert chunks == [(MERGE_BELOW,), (10,)]


@pytest.mark.parametrize("seed", range(5))
def test_downsample_matches_a_bucket_by_bucket_reference(seed):
    """Vectorised min/max per bucket picks the same points as a plain loop, with NaN and ±inf about."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n, m = int(rng.integers(1, 400)), int(rng.integers(1, 50))
        values = rng.choice([np.nan, np.inf, -np.inf, 0.0, 1.0, 2.0, 3.0], n, p=[.3, .05, .05, .15, .15, .15, .15])
        assert minmax_indices(values, m).tolist() == reference_indices(values, m)


def reference_indices(values: np.ndarray, m: int) -> list[int]:
    n = len(values)
    if n <= m:
        return list(range(n))
    width, wide = divmod(n, m)
    edges = np.cumsum([0] + [width + (b < wide) for b in range(m)])
    keep = set()
    for a, b in zip(edges[:-1], edges[1:]):
        numbers = np.flatnonzero(~np.isnan(values[a:b]))
        if len(numbers) == 0:
            keep.add(int(a))
            continue
        segment = values[a:b][numbers]
        keep.update((int(a + numbers[segment.argmin()]), int(a + numbers[segment.argmax()])))
    return sorted(keep)
