"""Repeated chart reads of a big series answered from block summaries are kept per state of the series."""
from __future__ import annotations

from ml_dash.server.series.downsample import Envelope, series_result


async def add(storage, experiment_id, index, points):
    events = [{"timestamp": 1.0, "step": s, "metrics": {"m": v}} for s, v in points]
    await storage.apply_batch(experiment_id, None, "metrics", "s", index, index + 1, events)


async def test_repeated_summary_reads_reuse_the_answer_until_the_series_changes(storage):
    experiment_id, _ = await storage.create_experiment("a", "w", "", "env", None, None)
    n = 200_000
    for i, k in enumerate(range(0, n, 50_000)):
        await add(storage, experiment_id, i, [(s, float(s % 100)) for s in range(k, k + 50_000)])
    first = await storage.metric_series(experiment_id, "m", None, None, 20)
    again = await storage.metric_series(experiment_id, "m", None, None, 20)
    assert isinstance(first, Envelope) and again is first  # kept: the same state, range and max_points
    assert not first.values.flags.writeable
    other = await storage.metric_series(experiment_id, "m", 1000, None, 20)
    assert isinstance(other, Envelope) and other is not first and other.count == n - 1000
    # A write gives the series a new tail pk: the kept answer no longer matches, and the new one counts the point.
    await add(storage, experiment_id, 4, [(n, 500.0)])
    live = await storage.metric_series(experiment_id, "m", None, None, 20)
    assert isinstance(live, Envelope) and live is not first and live.count == n + 1 and live.max == 500.0
    answer = series_result("m", live, 20, nonfinite_as_text=True)
    assert 500.0 in answer["values"] and answer["count"] == n + 1
    # Forgetting the series forgets its answers too.
    storage._series_cache.discard((experiment_id, "m"))
    assert await storage.metric_series(experiment_id, "m", None, None, 20) is not live
