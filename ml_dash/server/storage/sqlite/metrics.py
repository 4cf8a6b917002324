"""SQLite metrics: columnar chunk rows (see ``_chunks``) written per batch and read back as series.

Split from ``_sqlite``: ``insert_metrics`` and ``chunk_row`` run inside the writer's transaction, and
``SQLiteMetricReads`` is the read half of ``SQLiteStorage`` (it runs on the reader thread and connection).
"""
from __future__ import annotations

import math
import sqlite3
from typing import Any, Callable, TypeVar

import numpy as np

from ml_dash.server.series.cache import (
    EXISTS,
    POINTS,
    STATE,
    SUMMARIES,
    read_series,
    run_sync,
)
from ml_dash.server.series.chunks import (
    COLUMNS,
    EncodedChunk,
    encode_chunk,
    merge_encoded,
    step_time_anchors,
)
from ml_dash.server.series.types import (
    VALUE_KIND_BOOL,
    VALUE_KIND_NAN,
    VALUE_KIND_NULL,
    VALUE_KIND_NUMBER,
    Series,
)

T = TypeVar("T")
# A live run sends a batch about every second: merging small tails keeps a long run at a few hundred chunks, and
# caps what one batch rewrites at about MERGE_BELOW * 25 bytes.
MERGE_BELOW = 4096


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


class SQLiteMetricReads:
    """Metric reads of ``SQLiteStorage``: needs its ``_rconn`` (the reader thread's connection), ``_read`` (runs on a
    reader thread, in one snapshot) and ``_experiment_pk``."""

    async def metric_names(self, experiment_id):
        def query() -> list[str]:
            pk = self._experiment_pk(self._rconn, experiment_id)
            return [r[0] for r in self._rconn.execute(
                "SELECT name FROM metric_names WHERE experiment_pk = ? ORDER BY name", (pk,))]

        return await self._read(query)

    async def last_metrics(self, experiment_id):
        def query() -> dict[str, Any]:
            pk = self._experiment_pk(self._rconn, experiment_id)
            rows = self._rconn.execute("SELECT name, last_value, last_kind FROM metric_names WHERE experiment_pk = ? "
                                       "ORDER BY name", (pk,))
            return {name: decode_value(value, kind) for name, value, kind in rows}

        return await self._read(query)

    async def metric_series(self, experiment_id, name, step_min, step_max, max_points=None):
        return await self._read(self._metric_series_sync, experiment_id, name, step_min, step_max, max_points)

    def _snapshot(self, fn: Callable[..., T], *args: Any) -> T:
        """Run several reads in one transaction, so a batch committed meanwhile is seen wholly or not at all.

        ``_read`` runs every read through here, on the reader thread's own connection.
        """
        conn = self._rconn
        if conn.in_transaction:
            return fn(*args)
        conn.execute("BEGIN")
        try:
            return fn(*args)
        finally:
            conn.execute("COMMIT")

    def _series_row(self, experiment_id: str, name: str) -> tuple[int, bool] | None:
        pk = self._experiment_pk(self._rconn, experiment_id)
        row = self._rconn.execute("SELECT pk, ordered FROM metric_names WHERE experiment_pk = ? AND name = ?",
                                  (pk, name)).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def _metric_series_sync(self, experiment_id, name, step_min, step_max, max_points=None) -> Series | None:
        reader = read_series(self._series_cache, (experiment_id, name), step_min, step_max, max_points)
        return run_sync(reader, lambda what, *args: self._series_query(experiment_id, name, what, *args))

    def _series_query(self, experiment_id: str, name: str, what: str, *args: Any) -> Any:
        """Answer one query of ``_series_cache.read_series`` (inside the caller's snapshot)."""
        if what == STATE:
            pk = self._experiment_pk(self._rconn, experiment_id)
            return self._rconn.execute("SELECT pk, ordered, tail_pk FROM metric_names WHERE experiment_pk = ? "
                                       "AND name = ?", (pk, name)).fetchone()
        if what == EXISTS:
            return self._rconn.execute("SELECT 1 FROM metric_chunks WHERE pk = ?", args).fetchone() is not None
        if what == POINTS:
            pks = list(args[0])
            return sorted(self._rconn.execute('SELECT pk, steps, "values", kinds FROM metric_chunks WHERE pk IN '
                                              f"({', '.join('?' * len(pks))})", pks).fetchall())
        if what == SUMMARIES:
            name_pk, step_min, step_max = args
            sql, params = ("SELECT chunk_pk, n, step_min, step_max, summary FROM metric_summaries WHERE name_pk = ?",
                           [name_pk])
            for clause, value in (("step_max >= ?", step_min), ("step_min <= ?", step_max)):
                if value is not None:
                    sql, params = f"{sql} AND {clause}", [*params, value]
            return sorted(self._rconn.execute(sql, params).fetchall())
        name_pk, after, step_min, step_max = args
        # Only the chunks overlapping the step range (index on name_pk, step_max, step_min), or newer than what the
        # cache holds, put back in stored order here: an ORDER BY would make SQLite copy every BLOB through its
        # sorter first.
        sql, params = 'SELECT pk, steps, "values", kinds FROM metric_chunks WHERE name_pk = ?', [name_pk]
        for clause, value in (("pk > ?", after), ("step_max >= ?", step_min), ("step_min <= ?", step_max)):
            if value is not None:
                sql, params = f"{sql} AND {clause}", [*params, value]
        return sorted(self._rconn.execute(sql, params).fetchall())

    async def metric_step_times(self, experiment_id, name, max_points):
        def query() -> tuple[np.ndarray, np.ndarray] | None:
            found = self._series_row(experiment_id, name)
            if found is None:
                return None
            rows = sorted(self._rconn.execute("SELECT pk, steps, timestamps FROM metric_chunks WHERE name_pk = ?",
                                              (found[0],)).fetchall())
            return step_time_anchors((row[1:] for row in rows), found[1], max_points)

        return await self._read(query)


def insert_metrics(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict],
                   merge_below: int = MERGE_BELOW) -> int:
    """One chunk per metric name in the batch; a small tail chunk of the same run absorbs it instead."""
    points: dict[str, list[tuple[Any, Any, Any]]] = {}
    for event in events:
        step, timestamp = event.get("step"), event.get("timestamp")
        for name, value in event["metrics"].items():
            points.setdefault(name, []).append((step, timestamp, value))
    for name, named in points.items():
        chunk = encode_chunk(named)
        conn.execute("INSERT OR IGNORE INTO metric_names (experiment_pk, name) VALUES (?, ?)", (experiment_pk, name))
        name_pk, step_hi, ordered, tail_pk = conn.execute(
            "SELECT pk, step_hi, ordered, tail_pk FROM metric_names WHERE experiment_pk = ? AND name = ?",
            (experiment_pk, name)).fetchone()
        tail = conn.execute('SELECT pk, steps, "values", kinds, timestamps FROM metric_chunks WHERE pk = ? '
                            "AND n < ? AND run_pk IS ?", (tail_pk, merge_below, run_pk)).fetchone()
        state = chunk_row(conn, name_pk, run_pk, chunk, step_hi, ordered, tail)
        step, timestamp, value = named[-1]
        conn.execute("UPDATE metric_names SET last_value = ?, last_kind = ?, last_step = ?, last_timestamp = ?, "
                     "step_hi = ?, ordered = ?, tail_pk = ? WHERE pk = ?",
                     (*encode_value(value), step, timestamp, *state, name_pk))
    return len(events)


def chunk_row(conn: sqlite3.Connection, name_pk: int, run_pk: int | None, chunk: EncodedChunk, step_hi: float | None,
              ordered: int, tail: tuple | None = None, summary: bool = True) -> tuple[float | None, int, int]:
    """Store ``chunk`` as the series' newest chunk row, or with ``tail`` (its row: pk and BLOBs) appended to it.

    Returns the series' new (step_hi, ordered, tail_pk). The merged row gets a fresh pk, so readers (and caches)
    that saw the old tail learn from its disappearance that it grew.
    """
    still_ordered = ordered and chunk.ordered and (step_hi is None or chunk.step_min >= step_hi)
    if chunk.step_max is not None:
        step_hi = chunk.step_max if step_hi is None else max(step_hi, chunk.step_max)
    stored = chunk
    if tail is not None:
        conn.execute("DELETE FROM metric_chunks WHERE pk = ?", (tail[0],))
        if summary:
            conn.execute("DELETE FROM metric_summaries WHERE chunk_pk = ?", (tail[0],))
        stored = merge_encoded(dict(zip(COLUMNS, tail[1:])), chunk)
    cursor = conn.execute('INSERT INTO metric_chunks (name_pk, run_pk, n, step_min, step_max, steps, "values", kinds, '
                          "timestamps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (name_pk, run_pk, stored.n, stored.step_min, stored.step_max, stored.steps, stored.values,
                           stored.kinds, stored.timestamps))
    # The summary in its own table, same transaction (``summary=False`` only for migration 3, which runs before
    # migrations 4 and 5 compute and move them).
    if summary:
        conn.execute("INSERT INTO metric_summaries (chunk_pk, name_pk, n, step_min, step_max, summary) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (cursor.lastrowid, name_pk, stored.n, stored.step_min,
                                                   stored.step_max, stored.summary))
    return step_hi, int(still_ordered), cursor.lastrowid
