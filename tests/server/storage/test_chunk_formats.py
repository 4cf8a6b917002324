"""Old (RAW) and compressed (ZSTD) chunks side by side: a database written before compression is read, extended with
compressed chunks, migrated and copied, and every read answers as if one format had written it all."""
from __future__ import annotations

import math
import sqlite3

import asyncpg
import numpy as np
import pytest

from ml_dash.server.series import chunks
from ml_dash.server.series.codec import RAW, ZSTD
from ml_dash.server.series.downsample import Envelope
from ml_dash.server.storage.copy import copy_database
from ml_dash.server.storage.registry import open_storage

from ..conftest import POSTGRES_URL, postgres_schema_url


def _value(step: int):
    return {0: math.nan, 1: math.inf, 2: -math.inf, 3: None, 4: True}.get(step % 89, math.sin(step / 40))


def _events(first: int, count: int) -> list[dict]:
    return [{"timestamp": 1.7e9 + s * 0.004, "step": s, "metrics": {"loss": _value(s), "big": 2**62 + s}}
            for s in range(first, first + count)]


# (first step, points, codec): RAW batches by an old server (a small last one: a tail), then the upgraded one's.
BATCHES = [(0, 5000, RAW), (5000, 300, RAW), (5300, 200, ZSTD), (5500, 5000, ZSTD), (10500, 50, ZSTD)]


async def _write(store, experiment_id: str, run_id: str, batches, monkeypatch, offset: int = 0) -> int:
    for first, count, codec in batches:
        monkeypatch.setattr(chunks, "WRITE_CODEC", codec)
        offset = (await store.apply_batch(experiment_id, run_id, "metrics", "c1:metrics", offset, offset + count,
                                          _events(first, count))).acked
    return offset


def _expected(last: int) -> tuple[list, list]:
    steps = list(range(last))
    values = [float("nan") if _value(s) is None else float(_value(s)) for s in steps]
    return steps, values


async def _check(store, experiment_id: str, last: int) -> None:
    steps, values = _expected(last)
    full = await store.metric_series(experiment_id, "loss", None, None)
    assert full.steps.tolist() == steps
    assert np.array_equal(full.values, np.array(values), equal_nan=True)
    assert full.kinds[3] != full.kinds[5] and full.kinds[4] != full.kinds[5]  # null and bool kept apart
    ranged = await store.metric_series(experiment_id, "loss", 4990, 5310)
    assert ranged.steps.tolist() == steps[4990:5311]
    big = await store.metric_series(experiment_id, "big", None, None)
    assert big.values[-1] == float(2**62 + last - 1)
    times_steps, times = await store.metric_step_times(experiment_id, "loss", 10)
    assert times_steps[-1] == last - 1 and times[-1] == 1.7e9 + (last - 1) * 0.004
    summary = {m["name"]: m for m in await store.metric_summary(experiment_id)}
    assert summary["loss"]["count"] == last and summary["loss"]["max"] == max(v for v in values if math.isfinite(v))


async def test_raw_chunks_are_read_and_extended_with_compressed_ones(storage_factory, monkeypatch):
    store = storage_factory(series_cache_mb=0)  # every read goes to the database
    await store.open()
    try:
        e, _ = await store.create_experiment("alice", "w", "", "p", None, None)
        run = await store.create_run(e, "run-1", None, 1.0)
        await _write(store, e, run, BATCHES[:2], monkeypatch)
        await _check(store, e, 5300)
        assert isinstance(await store.metric_series(e, "loss", None, None, max_points=2), Envelope)
        await _write(store, e, run, BATCHES[2:], monkeypatch, offset=5300)
        await _check(store, e, 10550)
        # charts of either format come from block summaries, not points
        assert isinstance(await store.metric_series(e, "loss", None, None, max_points=4), Envelope)
        codecs = await _codecs(store)
        assert RAW in codecs and ZSTD in codecs  # the 300-point RAW tail was merged into a compressed chunk
    finally:
        await store.close()


async def _codecs(store) -> list[int]:
    if hasattr(store, "_pool"):
        async with store._pool.acquire() as conn:
            return [r[0] for r in await conn.fetch("SELECT codec FROM metric_chunks ORDER BY pk")]
    conn = sqlite3.connect(store.path)
    try:
        return [r[0] for r in conn.execute("SELECT codec FROM metric_chunks ORDER BY pk")]
    finally:
        conn.close()


async def _version_10_database(path: str, monkeypatch) -> tuple[str, str, int]:
    """What the last server before compression left: RAW chunks (the same bytes as that server wrote, see
    test_chunks.test_raw_blobs_are_little_endian_bytes) written through the real write path, then the codec column
    and migration 11 taken off again, so the file is at schema version 10."""
    store = open_storage(f"sqlite:///{path}", "unused")
    await store.open()
    try:
        e, _ = await store.create_experiment("alice", "w", "", "p", None, None)
        run = await store.create_run(e, "run-1", None, 1.0)
        offset = await _write(store, e, run, BATCHES[:2], monkeypatch)
    finally:
        await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ALTER TABLE metric_chunks DROP COLUMN codec")
    # and what came after it (12: distributed jobs, 13: media), so that the file is exactly at version 10
    for statement in ("DROP TABLE media", "DROP TABLE media_histograms", "DROP INDEX runs_job", "DROP INDEX runs_heartbeat", "DROP TABLE console",
                      "ALTER TABLE runs DROP COLUMN job_id", "ALTER TABLE runs DROP COLUMN rank",
                      "ALTER TABLE runs DROP COLUMN world_size", "ALTER TABLE runs DROP COLUMN heartbeat_at"):
        conn.execute(statement)
    conn.execute("DELETE FROM schema_migrations WHERE version > 10")
    conn.close()
    return e, run, offset


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 35), reason="needs ALTER TABLE DROP COLUMN to build the file")
async def test_a_version_10_database_is_migrated_then_read_and_extended(tmp_path, monkeypatch):
    path = str(tmp_path / "ml-dash.sqlite3")
    e, run, offset = await _version_10_database(path, monkeypatch)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 10
    assert "codec" not in [r[1] for r in conn.execute("PRAGMA table_info(metric_chunks)")]
    conn.close()
    store = open_storage(f"sqlite:///{path}", "unused", series_cache_mb=0)
    await store.open()  # runs migration 11
    try:
        await _check(store, e, 5300)
        await _write(store, e, run, BATCHES[2:], monkeypatch, offset=offset)
        await _check(store, e, 10550)
        assert set(await _codecs(store)) == {RAW, ZSTD}
    finally:
        await store.close()


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL tests need ML_DASH_TEST_POSTGRES=postgresql://...")
async def test_copy_carries_raw_and_compressed_chunks_as_they_are(tmp_path, monkeypatch):
    path = str(tmp_path / "ml-dash.sqlite3")
    store = open_storage(f"sqlite:///{path}", "unused", series_cache_mb=0)
    await store.open()
    try:
        e, _ = await store.create_experiment("alice", "w", "", "p", None, None)
        run = await store.create_run(e, "run-1", None, 1.0)
        await _write(store, e, run, BATCHES[:2] + [(5300, 5000, ZSTD)], monkeypatch)
    finally:
        await store.close()
    source = sqlite3.connect(path)
    stored = source.execute('SELECT pk, codec, steps, "values", kinds, timestamps FROM metric_chunks '
                            "ORDER BY pk").fetchall()
    source.close()
    assert {row[1] for row in stored} == {RAW, ZSTD}
    with postgres_schema_url() as url:
        await copy_database(path, url, echo=lambda line: None)
        conn = await asyncpg.connect(url)
        try:
            copied = [tuple(r) for r in await conn.fetch(
                "SELECT pk, codec, steps, vals, kinds, timestamps FROM metric_chunks ORDER BY pk")]
        finally:
            await conn.close()
        assert copied == stored  # byte for byte, each chunk with its own format tag
        target = open_storage(url, "unused", series_cache_mb=0)
        await target.open()
        try:
            await _check(target, e, 10300)
        finally:
            await target.close()
