"""Block summaries: a wide downsampled read is drawn from per-block min/max records, never from every point."""
from __future__ import annotations

import sqlite3

import asyncpg
import numpy as np
import pytest

from ml_dash.server.series.chunks import BLOCK, SUMMARY_DTYPE, encode_chunk, summarize
from ml_dash.server.series.codec import RAW
from ml_dash.server.series.downsample import Envelope, series_result
from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.storage.sqlite.migrations import MIGRATIONS
from ml_dash.server.storage.registry import open_storage
from ml_dash.server.series.types import VALUE_KIND_NAN, VALUE_KIND_NULL, VALUE_KIND_NUMBER

from ..conftest import POSTGRES_URL, postgres_schema_url


async def new_series(storage, batches, prefix="p"):
    """An experiment whose stream 's' got ``batches`` (lists of (step, value)) in order; returns its id."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", prefix, None, None)
    for i, batch in enumerate(batches):
        events = [{"timestamp": 1000.0 + s, "step": s, "metrics": {"m": v}} for s, v in batch]
        await storage.apply_batch(experiment_id, None, "metrics", "s", i, i + 1, events)
    return experiment_id


def test_summarize_blocks():
    values = np.arange(2 * BLOCK + 10, dtype=float)
    values[5], values[BLOCK + 7] = -3.0, np.inf
    values[2 * BLOCK:] = np.nan  # the short last block holds no number
    steps = np.arange(len(values), dtype=float)
    kinds = np.where(np.isnan(values), VALUE_KIND_NULL, VALUE_KIND_NUMBER).astype(np.int8)
    records = summarize(steps, values, kinds, ordered=True)
    assert records.dtype == SUMMARY_DTYPE and len(records) == 3
    assert records["lo_pos"].tolist() == [5, BLOCK, -1] and records["lo_value"][0] == -3.0
    assert records["hi_pos"].tolist() == [BLOCK - 1, BLOCK + 7, -1] and records["hi_value"][1] == np.inf
    assert records["fin_hi"][1] == 2 * BLOCK - 1  # the finite max skips the infinity
    assert records["first_step"][2] == 2 * BLOCK and records["first_kind"][2] == VALUE_KIND_NULL
    # Unordered points are summarised in step order, positions counting in that order.
    shuffled = summarize(np.array([3.0, 1.0, 2.0]), np.array([30.0, 10.0, 20.0]), np.zeros(3, np.int8))
    assert shuffled["lo_pos"].tolist() == [0] and shuffled["lo_step"].tolist() == [1.0]
    assert shuffled["hi_pos"].tolist() == [2] and shuffled["hi_step"].tolist() == [3.0]
    # Every encoded chunk carries its summary.
    chunk = encode_chunk([(s, None, float(s)) for s in range(3 * BLOCK)])
    assert len(chunk.summary) == 3 * SUMMARY_DTYPE.itemsize


async def test_spike_among_a_million_points_survives_the_summary_path(storage):
    n = 1_000_000
    batches = [[(s, 0.5 + (s % 7) * 0.01) for s in range(k, k + 100_000)] for k in range(0, n, 100_000)]
    batches[6][54_321] = (654_321, 1e6)
    experiment_id = await new_series(storage, batches)
    series = await storage.metric_series(experiment_id, "m", None, None, 200)
    assert isinstance(series, Envelope)  # no point was decoded
    answer = series_result("m", series, 200, nonfinite_as_text=True)
    assert answer["count"] == n and len(answer["values"]) <= 400
    assert answer["max"] == 1e6 and 654_321 in answer["steps"] and 1e6 in answer["values"]
    assert answer["min"] == 0.5 and 0.5 in answer["values"]
    # A wide range cut inside chunks (edges summarised afresh) keeps it too, with an exact count.
    ranged = await storage.metric_series(experiment_id, "m", 123_457, 876_543, 100)
    assert isinstance(ranged, Envelope) and ranged.count == 876_543 - 123_457 + 1
    assert 1e6 in ranged.values.tolist() and ranged.steps.min() >= 123_457 and ranged.steps.max() <= 876_543
    # A zoom into a narrow range is still full resolution.
    zoom = await storage.metric_series(experiment_id, "m", 654_000, 654_999, 200)
    assert not isinstance(zoom, Envelope) and len(zoom.values) == 1000


def _check_against_full(summary: dict, full: dict, stored: dict) -> None:
    """Same count and min/max as the full-resolution answer; every point a stored one; the extremes present."""
    assert summary["count"] == full["count"] and summary["min"] == full["min"] and summary["max"] == full["max"]
    assert summary["steps"] == sorted(summary["steps"])
    for step, value in zip(summary["steps"], summary["values"]):
        assert stored[step] == value or (value in (None, "NaN") and stored[step] is None)
    numbers = [v for v in full["values"] if isinstance(v, float)]
    if numbers:
        assert max(numbers) in summary["values"] and min(numbers) in summary["values"]


@pytest.mark.parametrize("seed", [1, 2])
async def test_summary_path_agrees_with_full_downsampling_on_random_data(storage, seed):
    rng = np.random.default_rng(seed)
    n = 300_000
    values = rng.normal(size=n).cumsum()
    values[rng.integers(0, n, 40)] = np.nan
    values[rng.integers(0, n, 3)] = rng.normal(size=3) * 1e4  # spikes both ways
    values[100_000:103_000] = np.nan  # a gap wider than several blocks
    sizes = rng.integers(1, 60_000, 40)
    batches, start = [], 0
    while start < n:  # random batch sizes: small ones merge into tails, big ones stand alone
        size = int(min(sizes[len(batches) % len(sizes)], n - start))
        batches.append([(s, None if np.isnan(values[s]) else float(values[s])) for s in range(start, start + size)])
        start += size
    experiment_id = await new_series(storage, batches, f"r{seed}")
    stored = {s: v for batch in batches for s, v in batch}
    for step_min, step_max, buckets in [(None, None, 50), (None, None, 7), (12_345, 287_654, 30), (None, 200_000, 40),
                                        (99_000, None, 20)]:
        storage._series_cache.discard((experiment_id, "m"))  # else the full read below is served from memory
        summary = await storage.metric_series(experiment_id, "m", step_min, step_max, buckets)
        assert isinstance(summary, Envelope)
        full = await storage.metric_series(experiment_id, "m", step_min, step_max)
        assert not isinstance(full, Envelope)
        summary_answer = series_result("m", summary, buckets, nonfinite_as_text=True)
        full_answer = series_result("m", full, buckets, nonfinite_as_text=True)
        assert len(summary_answer["values"]) <= 2 * buckets
        _check_against_full(summary_answer, full_answer, stored)


async def test_cache_and_summaries_agree(storage):
    n = 200_000
    batches = [[(s, float(s % 1000)) for s in range(k, k + 50_000)] for k in range(0, n, 50_000)]
    batches[1][10] = (50_010, -5.0)
    experiment_id = await new_series(storage, batches)
    stored = {s: v for batch in batches for s, v in batch}
    cold = await storage.metric_series(experiment_id, "m", None, None, 20)
    assert isinstance(cold, Envelope)
    await storage.metric_series(experiment_id, "m", None, None)  # a full read fills the cache
    warm = await storage.metric_series(experiment_id, "m", None, None, 20)
    assert not isinstance(warm, Envelope)  # an unchanged cached series is served from memory
    _check_against_full(series_result("m", cold, 20, True), series_result("m", warm, 20, True), stored)
    # Appended since: the cache or the summaries answer, and agree with a full read of the new state.
    await new_batch(storage, experiment_id, len(batches), [(s, 2000.0 if s == n + 5 else 1.0) for s in range(n, n + 9)])
    stored.update({s: (2000.0 if s == n + 5 else 1.0) for s in range(n, n + 9)})
    live = await storage.metric_series(experiment_id, "m", None, None, 20)
    assert not isinstance(live, Envelope)  # the cached entry is brought up to date from the new chunk
    storage._series_cache.discard((experiment_id, "m"))
    live = await storage.metric_series(experiment_id, "m", None, None, 20)
    assert isinstance(live, Envelope) and live.count == n + 9 and live.max == 2000.0
    full = await storage.metric_series(experiment_id, "m", None, None)
    _check_against_full(series_result("m", live, 20, True), series_result("m", full, 20, True), stored)


async def new_batch(storage, experiment_id, index, points):
    events = [{"timestamp": 1000.0 + s, "step": s, "metrics": {"m": v}} for s, v in points]
    await storage.apply_batch(experiment_id, None, "metrics", "s", index, index + 1, events)


async def test_unordered_series_uses_full_points(storage):
    """A series not logged in step order has overlapping chunks: it is downsampled from its points, as before."""
    batches = [[(s, float(s)) for s in range(k, 40_000, 2)] for k in (1, 0)]
    experiment_id = await new_series(storage, batches)
    series = await storage.metric_series(experiment_id, "m", None, None, 3)
    assert not isinstance(series, Envelope) and len(series.values) == 40_000


async def test_sqlite_migration_backfills_summaries(tmp_path):
    """A data dir at schema version 3 (chunks without summaries) gets them computed on open."""
    path = str(tmp_path / "v3.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS[:3]:
        if callable(sql):
            sql(conn)
        else:
            conn.executescript(sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute("INSERT INTO experiments (pk, id, namespace, workspace, directory, prefix, created_at) "
                 "VALUES (1, 'e1', 'a', 'w', '', 'p', 0)")
    chunk = encode_chunk([(s, None, 7.0 if s == 3000 else None if s == 10 else 0.0) for s in range(5000)], RAW)  # an old server wrote RAW chunks
    conn.execute("INSERT INTO metric_names (pk, experiment_pk, name, tail_pk) VALUES (1, 1, 'm', 1)")
    conn.execute('INSERT INTO metric_chunks (pk, name_pk, n, step_min, step_max, steps, "values", kinds, timestamps) '
                 "VALUES (1, 1, ?, ?, ?, ?, ?, ?, ?)", (chunk.n, chunk.step_min, chunk.step_max, chunk.steps,
                                                         chunk.values, chunk.kinds, chunk.timestamps))
    conn.close()
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        series = await storage.metric_series("e1", "m", None, None, 2)
        assert isinstance(series, Envelope) and series.max == 7.0 and 3000 in series.steps.tolist()
    finally:
        await storage.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT chunk_pk, summary FROM metric_summaries").fetchall() == [(1, chunk.summary)]
    assert "summary" not in [r[1] for r in conn.execute("PRAGMA table_info(metric_chunks)")]
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == MIGRATIONS[-1][0]


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL tests need ML_DASH_TEST_POSTGRES=postgresql://...")
async def test_postgres_migration_backfills_summaries():
    """A database at schema version 1 (chunks without summaries) gets them computed when a newer server opens it."""
    from ml_dash.server.storage.postgres.migrations import MIGRATIONS as PG_MIGRATIONS

    with postgres_schema_url() as url:
        chunk = encode_chunk([(s, None, -9.0 if s == 4321 else float("nan") if s == 7 else 1.0)
                              for s in range(6000)], RAW)  # an old server wrote RAW chunks
        conn = await asyncpg.connect(url)  # the URL's search_path is passed on as a server setting
        try:
            # A real version-1 database: only the first migration applied, one chunk written by an old server.
            await conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                               "applied_at DOUBLE PRECISION NOT NULL)")
            await conn.execute(PG_MIGRATIONS[0][1])
            await conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
            e = await conn.fetchval("INSERT INTO experiments (id, namespace, workspace, directory, prefix, "
                                    "created_at) VALUES ('e1', 'a', 'w', '', 'p', 0) RETURNING pk")
            name_pk = await conn.fetchval("INSERT INTO metric_names (experiment_pk, name) VALUES ($1, 'm') "
                                          "RETURNING pk", e)
            pk = await conn.fetchval(
                "INSERT INTO metric_chunks (name_pk, n, step_min, step_max, steps, vals, kinds, timestamps) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING pk", name_pk, chunk.n, chunk.step_min,
                chunk.step_max, chunk.steps, chunk.values, chunk.kinds, chunk.timestamps)
            await conn.execute("UPDATE metric_names SET tail_pk = $1 WHERE pk = $2", pk, name_pk)
        finally:
            await conn.close()
        storage = open_storage(url, "unused")
        await storage.open()  # migrates to the newest version
        try:
            series = await storage.metric_series("e1", "m", None, None, 2)
            assert isinstance(series, Envelope) and series.min == -9.0 and 4321 in series.steps.tolist()
        finally:
            await storage.close()
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT summary FROM metric_chunks WHERE pk = $1", pk) == chunk.summary
            assert await conn.fetchval("SELECT MAX(version) FROM schema_migrations") == PG_MIGRATIONS[-1][0]
        finally:
            await conn.close()
