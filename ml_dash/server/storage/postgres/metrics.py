"""PostgreSQL metrics: columnar chunk rows (see ``_chunks``) written per batch and read back as series.

Split from ``_postgres`` as ``_sqlite_metrics`` is from ``_sqlite``: ``MetricRows`` is built before a batch's
transaction and written inside it, and ``PostgresMetricReads`` is the metric read half of ``PostgresStorage`` (it
needs its ``_pool``, ``_experiment_pk`` and ``_series_cache``).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import asyncpg

from ml_dash.server.series.cache import (
    EXISTS,
    POINTS,
    STATE,
    SUMMARIES,
    read_series,
    run_async,
)
from ml_dash.server.series.chunks import encode_chunk, merge_encoded, step_time_anchors
from ml_dash.server.series.types import (
    VALUE_KIND_BOOL,
    VALUE_KIND_NAN,
    VALUE_KIND_NULL,
    VALUE_KIND_NUMBER,
)

_INT64 = (-(2**63), 2**63)
# A live run sends a batch about every second: merging small tails keeps a long run at a few hundred chunks, and
# caps what one batch rewrites at about MERGE_BELOW * 25 bytes (the same rule as SQLite).
MERGE_BELOW = 4096


class PostgresMetricReads:
    """Metric reads of ``PostgresStorage``."""

    async def metric_names(self, experiment_id):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            rows = await conn.fetch("SELECT name FROM metric_names WHERE experiment_pk = $1 ORDER BY name", pk)
        return [r[0] for r in rows]

    async def last_metrics(self, experiment_id):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            rows = await conn.fetch("SELECT name, last_num, last_int, last_kind FROM metric_names "
                                    "WHERE experiment_pk = $1 AND last_kind IS NOT NULL ORDER BY name", pk)
        return {name: _decode_last(num, integer, kind) for name, num, integer, kind in rows}

    async def _chunks(self, experiment_id: str, name: str, columns: str, step_min=None, step_max=None):
        """(ordered, chunk rows in stored order) of a series, skipping chunks outside the step range; None if no such
        metric. One transaction (REPEATABLE READ) so a batch committed meanwhile is seen wholly or not at all."""
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                row = await conn.fetchrow("SELECT pk, ordered FROM metric_names WHERE experiment_pk = $1 AND name = $2",
                                          pk, name)
                if row is None:
                    return None
                sql, args = f"SELECT {columns} FROM metric_chunks WHERE name_pk = $1", [row["pk"]]
                if step_min is not None:
                    args.append(float(step_min))
                    sql += f" AND step_max >= ${len(args)}"
                if step_max is not None:
                    args.append(float(step_max))
                    sql += f" AND step_min <= ${len(args)}"
                return row["ordered"], await conn.fetch(sql + " ORDER BY pk", *args)

    async def metric_series(self, experiment_id, name, step_min, step_max, max_points=None):
        reader = read_series(self._series_cache, (experiment_id, name), step_min, step_max, max_points)
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            # One REPEATABLE READ snapshot for the cache check and the chunks, as in _chunks.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await run_async(reader, functools.partial(self._series_query, conn, pk, name))

    @staticmethod
    async def _series_query(conn: asyncpg.Connection, experiment_pk: int, name: str, what: str, *args: Any) -> Any:
        """Answer one query of ``_series_cache.read_series``."""
        if what == STATE:
            row = await conn.fetchrow("SELECT pk, ordered, tail_pk FROM metric_names WHERE experiment_pk = $1 "
                                      "AND name = $2", experiment_pk, name)
            return None if row is None else tuple(row)
        if what == EXISTS:
            return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM metric_chunks WHERE pk = $1)", *args)
        if what == POINTS:
            return await conn.fetch("SELECT pk, steps, vals, kinds FROM metric_chunks WHERE pk = ANY($1::int8[]) "
                                    "ORDER BY pk", list(args[0]))
        if what == SUMMARIES:
            name_pk, step_min, step_max = args
            sql, params = "SELECT pk, n, step_min, step_max, summary FROM metric_chunks WHERE name_pk = $1", [name_pk]
            for clause, value in (("step_max >= $", step_min), ("step_min <= $", step_max)):
                if value is not None:
                    params.append(float(value))
                    sql += f" AND {clause}{len(params)}"
            return await conn.fetch(sql + " ORDER BY pk", *params)
        name_pk, after, step_min, step_max = args
        sql, params = "SELECT pk, steps, vals, kinds FROM metric_chunks WHERE name_pk = $1", [name_pk]
        for clause, value in (("pk > $", after), ("step_max >= $", step_min), ("step_min <= $", step_max)):
            if value is not None:
                params.append(value if clause.startswith("pk") else float(value))
                sql += f" AND {clause}{len(params)}"
        return await conn.fetch(sql + " ORDER BY pk", *params)

    async def metric_step_times(self, experiment_id, name, max_points):
        found = await self._chunks(experiment_id, name, "steps, timestamps")
        if found is None:
            return None
        ordered, rows = found
        return step_time_anchors(rows, ordered, max_points)


class MetricRows:
    """One chunk per metric name in the batch; a small tail chunk of the same run absorbs it instead (as in SQLite)."""

    def __init__(self, events: list[dict], experiment_pk: int, run_pk: int | None) -> None:
        self.experiment_pk, self.run_pk = experiment_pk, run_pk
        points: dict[str, list[tuple[Any, Any, Any]]] = {}
        for event in events:
            step, timestamp = event.get("step"), event.get("timestamp")
            for name, value in event["metrics"].items():
                points.setdefault(name, []).append((step, timestamp, value))
        # Sorted: every batch locks its names' rows in the same order, so two batches cannot deadlock.
        self.names = sorted(points)
        self.chunks = [encode_chunk(points[name]) for name in self.names]
        self.lasts = [_encode_last(points[name][-1][2]) for name in self.names]
        self.count = len(events)

    async def write(self, conn: asyncpg.Connection) -> int:
        if not self.names:
            return self.count
        # Create the names (race-free across workers) and lock their rows; read each series' state.
        state = {r["name"]: r for r in await conn.fetch(
            "INSERT INTO metric_names (experiment_pk, name) SELECT $1, unnest($2::text[]) "
            "ON CONFLICT (experiment_pk, name) DO UPDATE SET name = EXCLUDED.name "
            "RETURNING name, pk, step_hi, ordered, tail_pk", self.experiment_pk, self.names)}
        name_pks = [state[n]["pk"] for n in self.names]
        # Small tails of the same run are taken out and come back merged with the new points, under a fresh pk.
        tails = {r["name_pk"]: r for r in await conn.fetch(
            f"DELETE FROM metric_chunks WHERE pk = ANY($1::int8[]) AND n < {MERGE_BELOW} "
            "AND run_pk IS NOT DISTINCT FROM $2 RETURNING name_pk, steps, vals, kinds, timestamps",
            [state[n]["tail_pk"] for n in self.names if state[n]["tail_pk"] is not None], self.run_pk)}
        stored, step_his, ordered = [], [], []
        for name, name_pk, chunk in zip(self.names, name_pks, self.chunks):
            hi, was_ordered = state[name]["step_hi"], state[name]["ordered"]
            ordered.append(bool(was_ordered and chunk.ordered and (hi is None or chunk.step_min >= hi)))
            if chunk.step_max is not None:
                hi = chunk.step_max if hi is None else max(hi, chunk.step_max)
            step_his.append(hi)
            tail = tails.get(name_pk)
            stored.append(chunk if tail is None else merge_encoded(
                {"steps": tail["steps"], "values": tail["vals"], "kinds": tail["kinds"],
                 "timestamps": tail["timestamps"]}, chunk))
        new_pks = dict(await conn.fetch(
            "INSERT INTO metric_chunks (name_pk, run_pk, n, step_min, step_max, steps, vals, kinds, timestamps, "
            "summary) SELECT name_pk, $1, n, step_min, step_max, steps, vals, kinds, timestamps, summary FROM unnest("
            "$2::int8[], $3::int4[], $4::float8[], $5::float8[], $6::bytea[], $7::bytea[], $8::bytea[], $9::bytea[], "
            "$10::bytea[]) AS c(name_pk, n, step_min, step_max, steps, vals, kinds, timestamps, summary) "
            "RETURNING name_pk, pk",
            self.run_pk, name_pks, [c.n for c in stored], [c.step_min for c in stored], [c.step_max for c in stored],
            [c.steps for c in stored], [c.values for c in stored], [c.kinds for c in stored],
            [c.timestamps for c in stored], [c.summary for c in stored]))
        await conn.execute(
            "UPDATE metric_names m SET last_num = u.num, last_int = u.int, last_kind = u.kind, step_hi = u.hi, "
            "ordered = u.ordered, tail_pk = u.tail FROM unnest($1::int8[], $2::float8[], $3::int8[], $4::int2[], "
            "$5::float8[], $6::bool[], $7::int8[]) AS u(pk, num, int, kind, hi, ordered, tail) WHERE m.pk = u.pk",
            name_pks, [x[0] for x in self.lasts], [x[1] for x in self.lasts], [x[2] for x in self.lasts],
            step_his, ordered, [new_pks[pk] for pk in name_pks])
        return self.count


# --- last values: exact 64-bit ints beside floats ---

def _encode_last(value: Any) -> tuple[float | None, int | None, int]:
    if value is None:
        return None, None, VALUE_KIND_NULL
    if value is True or value is False:
        return None, int(value), VALUE_KIND_BOOL
    if type(value) is int and _INT64[0] <= value < _INT64[1]:
        return None, value, VALUE_KIND_NUMBER
    if type(value) not in (int, float):
        raise TypeError(f"cannot store a metric value of type {type(value).__name__}")
    if value != value:
        return None, None, VALUE_KIND_NAN
    return float(value), None, VALUE_KIND_NUMBER


def _decode_last(num: float | None, integer: int | None, kind: int) -> Any:
    if kind == VALUE_KIND_BOOL:
        return bool(integer)
    if kind == VALUE_KIND_NAN:
        return math.nan
    if kind == VALUE_KIND_NULL:
        return None
    return integer if integer is not None else num
