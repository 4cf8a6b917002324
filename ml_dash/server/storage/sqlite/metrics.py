"""SQLite metric writes: columnar chunk rows (see ``series.chunks``), in the writer's transaction.

Reads are shared (``sql.storage``). What is SQLite's own: its value encoding (no NaN, no bool, untyped ``last_value``)
and the per-name statements (SQLite has no arrays to batch them into, and a statement costs no round trip).
``insert_metrics`` runs per batch, ``chunk_row`` also in migration 3.
"""
from __future__ import annotations

import math
import sqlite3
from typing import Any

from ml_dash.server.series.batch import MetricBatch
from ml_dash.server.series.chunks import COLUMNS, EncodedChunk
from ml_dash.server.series.codec import RAW
from ml_dash.server.series.types import (
    VALUE_KIND_BOOL,
    VALUE_KIND_NAN,
    VALUE_KIND_NULL,
    VALUE_KIND_NUMBER,
)
from ml_dash.server.storage.sql.metrics import MERGE_BELOW, next_chunk


def encode_value(value: Any) -> tuple[Any, int]:
    """A validated metric value to (SQL value, kind): SQLite turns NaN into NULL, so NaN is recorded in ``kind``."""
    if value is None:
        return None, VALUE_KIND_NULL
    if value is True or value is False:
        return int(value), VALUE_KIND_BOOL
    if value != value:
        return None, VALUE_KIND_NAN
    return value, VALUE_KIND_NUMBER


def decode_value(value: Any, kind: int) -> Any:
    if kind == VALUE_KIND_BOOL:
        return bool(value)
    if kind == VALUE_KIND_NAN:
        return math.nan
    return value  # numbers, and None for VALUE_KIND_NULL


def insert_metrics(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None,
                   events: list[dict] | MetricBatch, merge_below: int = MERGE_BELOW) -> int:
    """One chunk per metric name in the batch; a small tail chunk of the same run absorbs it instead."""
    batch = MetricBatch.of_events(events)
    for name in batch.names:
        chunk = batch.chunks[name]
        conn.execute("INSERT OR IGNORE INTO metric_names (experiment_pk, name) VALUES (?, ?)", (experiment_pk, name))
        name_pk, step_hi, ordered, tail_pk = conn.execute(
            "SELECT pk, step_hi, ordered, tail_pk FROM metric_names WHERE experiment_pk = ? AND name = ?",
            (experiment_pk, name)).fetchone()
        tail = conn.execute('SELECT pk, steps, "values", kinds, timestamps, codec FROM metric_chunks WHERE pk = ? '
                            "AND n < ? AND run_pk IS ?", (tail_pk, merge_below, run_pk)).fetchone()
        state = chunk_row(conn, name_pk, run_pk, chunk, step_hi, ordered, tail)
        step, timestamp, value = batch.last[name]
        conn.execute("UPDATE metric_names SET last_value = ?, last_kind = ?, last_step = ?, last_timestamp = ?, "
                     "step_hi = ?, ordered = ?, tail_pk = ? WHERE pk = ?",
                     (*encode_value(value), step, timestamp, *state, name_pk))
    return batch.count


def chunk_row(conn: sqlite3.Connection, name_pk: int, run_pk: int | None, chunk: EncodedChunk, step_hi: float | None,
              ordered: int, tail: tuple | None = None, summary: bool = True) -> tuple[float | None, int, int]:
    """Store ``chunk`` as the series' newest chunk row, or with ``tail`` (its row: pk, BLOBs, codec) appended to it
    (``sql.metrics.next_chunk``). Returns the series' new (step_hi, ordered, tail_pk)."""
    if tail is not None:
        conn.execute("DELETE FROM metric_chunks WHERE pk = ?", (tail[0],))
        if summary:
            conn.execute("DELETE FROM metric_summaries WHERE chunk_pk = ?", (tail[0],))
    stored, step_hi, still_ordered = next_chunk(chunk, step_hi, ordered,
                                                None if tail is None else {**dict(zip(COLUMNS, tail[1:5])),
                                                                           "codec": tail[5]})
    # A RAW chunk leaves codec to the column's default: migration 3 writes RAW chunks before migration 9 adds it.
    codec = ", codec" if stored.codec != RAW else ""
    cursor = conn.execute('INSERT INTO metric_chunks (name_pk, run_pk, n, step_min, step_max, steps, "values", kinds, '
                          f"timestamps{codec}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?{', ?' if codec else ''})",
                          (name_pk, run_pk, stored.n, stored.step_min, stored.step_max, stored.steps, stored.values,
                           stored.kinds, stored.timestamps, *((stored.codec,) if codec else ())))
    # The summary in its own table, same transaction (``summary=False`` only for migration 3, which runs before
    # migrations 4 and 5 compute and move them).
    if summary:
        conn.execute("INSERT INTO metric_summaries (chunk_pk, name_pk, n, step_min, step_max, summary) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (cursor.lastrowid, name_pk, stored.n, stored.step_min,
                                                   stored.step_max, stored.summary))
    return step_hi, int(still_ordered), cursor.lastrowid
