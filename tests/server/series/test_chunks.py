"""Columnar chunks: the shared encode/decode layout and the SQLite migration from one row per point."""
from __future__ import annotations

import math
import sqlite3

import numpy as np

from ml_dash.server.series.chunks import COLUMNS, decode_chunks, encode_chunk, merge_encoded, to_series
from ml_dash.server.series.codec import RAW
from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.storage.sqlite.migrations import MIGRATIONS
from ml_dash.server.series.types import VALUE_KIND_BOOL, VALUE_KIND_NAN, VALUE_KIND_NULL, VALUE_KIND_NUMBER


def test_encode_decode_keeps_values_kinds_and_missing_steps():
    """Every value kind survives the BLOB round trip; a missing step or timestamp reads back as NaN."""
    chunk = encode_chunk([(5, 1.0, 1.5), (None, None, None), (6, 3.0, True), (7, 4.0, math.nan), (8, 5.0, -math.inf)])
    assert (chunk.n, chunk.step_min, chunk.step_max, chunk.ordered) == (5, 5.0, 8.0, False)
    steps, values, kinds, stamps = decode_chunks([[*(getattr(chunk, c) for c in COLUMNS), chunk.codec]], COLUMNS)
    assert np.isnan(steps[1]) and np.isnan(stamps[1]) and steps[0] == 5
    assert kinds.tolist() == [VALUE_KIND_NUMBER, VALUE_KIND_NULL, VALUE_KIND_BOOL, VALUE_KIND_NAN, VALUE_KIND_NUMBER]
    assert values[2] == 1.0 and np.isnan(values[3]) and values[4] == -np.inf
    assert steps.dtype.str == "<f8" and kinds.dtype.str == "|i1"


def test_raw_blobs_are_little_endian_bytes():
    """The old layout is fixed bytes, not the host's: PostgreSQL's BYTEA columns hold the same."""
    chunk = encode_chunk([(1, 2.0, 3.0)], RAW)
    assert chunk.steps == np.array([1.0], "<f8").tobytes() and chunk.kinds == b"\x00"


def test_merge_appends_in_stored_order():
    """A merged chunk is the old points followed by the new ones, with bounds and order flag recomputed."""
    old = encode_chunk([(1, 1.0, 1.0), (2, 2.0, 2.0)])
    merged = merge_encoded({c: getattr(old, c) for c in COLUMNS} | {"codec": old.codec}, encode_chunk([(0, 3.0, 9.0)]))
    steps, values = decode_chunks([(merged.steps, merged.values, merged.codec)], ("steps", "values"))
    assert steps.tolist() == [1, 2, 0] and values.tolist() == [1, 2, 9]
    assert (merged.n, merged.step_min, merged.step_max, merged.ordered) == (3, 0.0, 2.0, False)


def test_to_series_sorts_stably_and_cuts_the_step_range():
    """Missing steps first, equal steps in stored order; a step range leaves out points without a step."""
    steps = np.array([3.0, np.nan, 1.0, 3.0, 2.0])
    values = np.arange(5.0)
    kinds = np.zeros(5, np.int8)
    whole = to_series(steps, values, kinds)
    assert whole.values.tolist() == [1, 2, 4, 0, 3]
    assert to_series(steps, values, kinds, 2, 3).values.tolist() == [4, 0, 3]
    assert to_series(steps, values, kinds, None, 1).values.tolist() == [2]
    assert to_series(steps, values, kinds, 5, None).values.tolist() == []


async def test_migration_turns_point_rows_into_chunks(tmp_path):
    """A data dir written with one row per point (schema version 1) reads back the same after the upgrade."""
    path = str(tmp_path / "old.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(MIGRATIONS[0][1])
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    conn.execute("INSERT INTO experiments (pk, id, namespace, workspace, directory, prefix, created_at) "
                 "VALUES (1, 'e1', 'a', 'w', '', 'p', 0)")
    conn.execute("INSERT INTO runs (pk, id, experiment_pk, client_run_id, status) VALUES (7, 'r1', 1, 'c', 'RUNNING')")
    conn.execute("INSERT INTO metric_names (pk, experiment_pk, name, last_value, last_kind) VALUES (1, 1, 'loss', 1, 1)")
    rows = [(1, 10, 100.0, 0.5, VALUE_KIND_NUMBER, None), (1, None, 101.0, None, VALUE_KIND_NULL, None),
            (1, 5, 102.0, None, VALUE_KIND_NAN, 7), (1, 11, 103.0, 1, VALUE_KIND_BOOL, 7)]
    conn.executemany("INSERT INTO metrics (name_pk, step, timestamp, value, kind, run_pk) VALUES (?, ?, ?, ?, ?, ?)",
                     rows)
    conn.close()

    storage = SQLiteStorage(path)
    await storage.open()
    try:
        series = await storage.metric_series("e1", "loss", None, None)
        assert np.isnan(series.steps[0]) and series.steps[1:].tolist() == [5, 10, 11]
        assert series.kinds.tolist() == [VALUE_KIND_NULL, VALUE_KIND_NAN, VALUE_KIND_NUMBER, VALUE_KIND_BOOL]
        assert series.values[2:].tolist() == [0.5, 1.0]
        assert await storage.last_metrics("e1") == {"loss": True}
        steps, stamps = await storage.metric_step_times("e1", "loss", 10)
        assert steps.tolist() == [5, 10, 11] and stamps.tolist() == [102.0, 100.0, 103.0]
        # Runs split chunks, and the tail of the last run keeps growing with new batches.
        await storage.apply_batch("e1", "r1", "metrics", "s", 0, 1, [{"timestamp": 104.0, "step": 12,
                                                                       "metrics": {"loss": 2.0}}])
        assert (await storage.metric_series("e1", "loss", 11, None)).values.tolist() == [1.0, 2.0]
    finally:
        await storage.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'metrics'").fetchone() is None
    assert conn.execute("SELECT run_pk, n FROM metric_chunks ORDER BY pk").fetchall() == [(None, 2), (7, 3)]
