"""PostgreSQL backend (asyncpg with a connection pool) for teams: several workers or machines share one database.

Everything that must hold across processes is enforced by the database, never by a process's memory:

- create-or-get experiment and create-run-by-``client_run_id`` are single ``INSERT ... ON CONFLICT`` statements, so two
  workers racing on the same key get the same row;
- a batch is one transaction that locks its stream's row (``INSERT ... ON CONFLICT DO UPDATE`` takes the row lock and
  reads the latest committed ``acked``), inserts the events and moves ``acked`` with ``UPDATE ... WHERE acked = start``:
  a replay sent to another worker waits for the first to commit, then reads the new offset and answers duplicate.

Metrics are columnar chunks (one row per batch and metric name, numpy arrays as BYTEA), as in the SQLite backend.
"""
from __future__ import annotations

import functools
import math
import time
import uuid
from typing import Any

import asyncpg
import numpy as np
import orjson

from ._chunks import decode_chunks, encode_chunk, merge_encoded, step_order
from ._errors import BadRequest, NotFound, StreamConflict
from ._postgres_schema import migrate
from ._series_cache import EXISTS, STATE, SeriesCache, read_series, run_async
from ._storage import VALUE_KIND_BOOL, VALUE_KIND_NAN, VALUE_KIND_NULL, VALUE_KIND_NUMBER, BatchResult, Storage

_EXPERIMENT_SELECT = """
SELECT e.pk, e.id, e.namespace, e.workspace, e.directory, e.prefix, e.readme, e.created_at,
       COALESCE(e.hostname, r.hostname) AS hostname, r.status,
       (SELECT MIN(started_at) FROM runs WHERE experiment_pk = e.pk) AS started_at,
       CASE WHEN r.status != 'RUNNING' THEN r.ended_at END AS completed_at
FROM experiments e
LEFT JOIN runs r ON r.pk = (SELECT MAX(pk) FROM runs WHERE experiment_pk = e.pk)
"""
_RUN_COLUMNS = "id, status, hostname, started_at, ended_at, error"
_INT64 = (-(2**63), 2**63)
# A live run sends a batch about every second: merging small tails keeps a long run at a few hundred chunks, and
# caps what one batch rewrites at about MERGE_BELOW * 25 bytes (the same rule as SQLite).
MERGE_BELOW = 4096


class PostgresStorage(Storage):
    """``url``: a libpq-style URL; extra query parameters become server settings (``?search_path=myschema``)."""

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.min_size, self.max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._experiment_pks: dict[str, int] = {}  # id → pk never changes once made, so caching it is safe
        self._series_cache = SeriesCache.from_env()  # per process; checked against the database on every read

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.url, min_size=self.min_size, max_size=self.max_size)
        try:
            async with self._pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await self._pool.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _experiment_pk(self, conn: asyncpg.Connection, experiment_id: str) -> int:
        pk = self._experiment_pks.get(experiment_id)
        if pk is None:
            pk = await conn.fetchval("SELECT pk FROM experiments WHERE id = $1", experiment_id)
            if pk is None:
                raise NotFound(f"no experiment {experiment_id!r}")
            self._experiment_pks[experiment_id] = pk
        return pk

    # experiments and runs
    async def create_experiment(self, namespace, workspace, directory, prefix, readme, hostname):
        # One statement, race-free across workers: the unique key picks the winner, xmax = 0 marks a fresh insert.
        row = await self._pool.fetchrow(
            "INSERT INTO experiments (id, namespace, workspace, directory, prefix, readme, hostname, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (namespace, workspace, directory, prefix) "
            "DO UPDATE SET readme = COALESCE(EXCLUDED.readme, experiments.readme) "
            "RETURNING id, (xmax = 0) AS created",
            uuid.uuid4().hex, namespace, workspace, directory, prefix, readme, hostname, time.time())
        return row["id"], row["created"]

    async def _experiments(self, where: str, args: list, tail: str = "") -> list[dict[str, Any]]:
        rows = await self._pool.fetch(f"SELECT * FROM ({_EXPERIMENT_SELECT}) x WHERE {where} {tail}", *args)
        return [dict(row) for row in rows]

    async def get_experiment(self, experiment_id):
        found = await self._experiments("id = $1", [experiment_id])
        if not found:
            raise NotFound(f"no experiment {experiment_id!r}")
        return found[0]

    async def list_experiments(self, namespaces, workspace, status, limit, offset):
        clauses, args = ["TRUE"], []
        if namespaces is not None:
            args.append(sorted(namespaces))
            clauses.append(f"namespace = ANY(${len(args)}::text[])")
        for column, value in (("workspace", workspace), ("status", status)):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        args += [limit, offset]
        return await self._experiments(" AND ".join(clauses), args,
                                       f"ORDER BY created_at DESC, pk DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}")

    async def list_namespaces(self):
        return [r[0] for r in await self._pool.fetch("SELECT DISTINCT namespace FROM experiments ORDER BY 1")]

    async def list_workspaces(self, namespace):
        return [r[0] for r in await self._pool.fetch(
            "SELECT DISTINCT workspace FROM experiments WHERE namespace = $1 ORDER BY 1", namespace)]

    async def create_run(self, experiment_id, client_run_id, hostname, started_at):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            # A retried create (possibly on another worker) returns the run the first one made; the no-op update
            # makes RETURNING answer for an existing row too.
            return await conn.fetchval(
                "INSERT INTO runs (id, experiment_pk, client_run_id, status, hostname, started_at) "
                "VALUES ($1, $2, $3, 'RUNNING', $4, $5) ON CONFLICT (experiment_pk, client_run_id) "
                "DO UPDATE SET client_run_id = EXCLUDED.client_run_id RETURNING id",
                uuid.uuid4().hex, pk, client_run_id, hostname, time.time() if started_at is None else started_at)

    async def get_run(self, run_id):
        row = await self._pool.fetchrow(
            "SELECT r.id, r.status, r.hostname, r.started_at, r.ended_at, r.error, e.id AS experiment_id, e.namespace "
            "FROM runs r JOIN experiments e ON e.pk = r.experiment_pk WHERE r.id = $1", run_id)
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return dict(row)

    async def update_run(self, run_id, status, error, ended_at):
        end = ended_at if ended_at is not None or status == "RUNNING" else time.time()
        result = await self._pool.execute(
            "UPDATE runs SET status = $1, error = COALESCE($2, error), ended_at = $3 WHERE id = $4",
            status, error, end, run_id)
        if result.endswith(" 0"):
            raise NotFound(f"no run {run_id!r}")

    async def list_runs(self, experiment_id):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            rows = await conn.fetch(f"SELECT {_RUN_COLUMNS} FROM runs WHERE experiment_pk = $1 ORDER BY pk", pk)
        return [dict(row) for row in rows]

    # ingest
    async def apply_batch(self, experiment_id, run_id, stream, stream_id, start, end, events):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            run_pk = None
            if run_id is not None:
                run_pk = await conn.fetchval("SELECT pk FROM runs WHERE id = $1 AND experiment_pk = $2", run_id, pk)
                if run_pk is None:
                    raise NotFound(f"no run {run_id!r} in experiment {experiment_id!r}")
            # Encode before the transaction so the row lock is held only while talking to the database.
            insert = {"metrics": _MetricRows, "parameters": _ParameterRows, "logs": _LogRows}[stream](events, pk, run_pk)
            async with conn.transaction():
                # Creates the stream row at 0 if new, else locks it; either way returns the latest committed offset.
                # A concurrent batch of the same stream (any worker) waits here until this transaction ends.
                acked = await conn.fetchval(
                    "INSERT INTO streams (experiment_pk, stream_id, acked) VALUES ($1, $2, 0) "
                    "ON CONFLICT (experiment_pk, stream_id) DO UPDATE SET acked = streams.acked RETURNING acked",
                    pk, stream_id)
                if start != acked:
                    if end <= acked:
                        return BatchResult(acked=acked, stored=0, duplicate=True)
                    raise StreamConflict(f"batch starts at {start} but stream {stream_id!r} is acked up to {acked}",
                                         acked)
                stored = await insert.write(conn)
                moved = await conn.execute("UPDATE streams SET acked = $1 WHERE experiment_pk = $2 AND stream_id = $3 "
                                           "AND acked = $4", end, pk, stream_id, start)
                if moved != "UPDATE 1":
                    raise StreamConflict(f"stream {stream_id!r} moved during the batch", acked)
            return BatchResult(acked=end, stored=stored)

    async def stream_offsets(self, experiment_id):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            rows = await conn.fetch("SELECT stream_id, acked FROM streams WHERE experiment_pk = $1", pk)
        return {r[0]: r[1] for r in rows}

    # reads
    async def parameter_ops(self, experiment_id):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            rows = await conn.fetch("SELECT record FROM parameters WHERE experiment_pk = $1 ORDER BY pk", pk)
        return [orjson.loads(r[0]) for r in rows]

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

    async def metric_series(self, experiment_id, name, step_min, step_max):
        reader = read_series(self._series_cache, (experiment_id, name), step_min, step_max)
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
        steps, stamps = decode_chunks(rows, ("steps", "timestamps"))
        known = ~(np.isnan(steps) | np.isnan(stamps))
        steps, stamps = steps[known], stamps[known]
        order = None if ordered else step_order(steps)
        if order is not None:
            steps, stamps = steps[order], stamps[order]
        # Every stride-th point in step order, plus the last one so the mapping covers the whole series.
        stride = max(1, -(-len(steps) // max(1, max_points)))
        pick = np.unique(np.append(np.arange(0, len(steps), stride), len(steps) - 1)) if len(steps) else []
        return steps[pick], stamps[pick]

    async def logs(self, experiment_id, level, limit):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            sql, args = "SELECT timestamp, level, message, context FROM logs WHERE experiment_pk = $1", [pk]
            if level is not None:
                args.append(level)
                sql += f" AND level = ${len(args)}"
            sql += " ORDER BY pk DESC"  # the newest `limit` entries, returned oldest first like a log file
            if limit is not None:
                args.append(limit)
                sql += f" LIMIT ${len(args)}"
            rows = await conn.fetch(sql, *args)
        return [{"timestamp": ts, "level": lv, "message": msg, "context": orjson.loads(ctx) if ctx else None}
                for ts, lv, msg, ctx in reversed(rows)]

    # files
    async def put_file(self, experiment_id, path, size, sha256):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            await conn.execute(
                "INSERT INTO files (experiment_pk, path, size, sha256, updated_at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (experiment_pk, path) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256, "
                "updated_at = EXCLUDED.updated_at", pk, path, size, sha256, time.time())

    async def get_file(self, experiment_id, path):
        found = await self.list_files(experiment_id, path)
        if not found:
            raise NotFound(f"no file {path!r} in experiment {experiment_id!r}")
        return found[0]

    async def list_files(self, experiment_id, path: str | None = None):
        async with self._pool.acquire() as conn:
            pk = await self._experiment_pk(conn, experiment_id)
            if path is None:
                rows = await conn.fetch("SELECT path, size, sha256 FROM files WHERE experiment_pk = $1 ORDER BY path", pk)
            else:
                rows = await conn.fetch("SELECT path, size, sha256 FROM files WHERE experiment_pk = $1 AND path = $2",
                                        pk, path)
        return [dict(row) for row in rows]


def _data_errors_as_400(method):
    """PostgreSQL refuses some text SQLite takes (NUL characters): a client's bad input is a 400, never a 500."""
    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except asyncpg.exceptions.CharacterNotInRepertoireError:
            raise BadRequest("text must not contain NUL characters") from None
        except asyncpg.exceptions.DataError as exc:
            raise BadRequest(f"value rejected by the database: {exc}") from None

    return wrapper


for _name in ("create_experiment", "get_experiment", "list_experiments", "list_workspaces", "create_run", "get_run",
              "update_run", "list_runs", "apply_batch", "stream_offsets", "parameter_ops", "metric_names",
              "last_metrics", "metric_series", "metric_step_times", "logs", "put_file", "get_file", "list_files"):
    setattr(PostgresStorage, _name, _data_errors_as_400(getattr(PostgresStorage, _name)))


# --- batch rows: built (and validated) before the transaction, written inside it with one multi-row INSERT each ---

class _MetricRows:
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
            "INSERT INTO metric_chunks (name_pk, run_pk, n, step_min, step_max, steps, vals, kinds, timestamps) "
            "SELECT name_pk, $1, n, step_min, step_max, steps, vals, kinds, timestamps FROM unnest("
            "$2::int8[], $3::int4[], $4::float8[], $5::float8[], $6::bytea[], $7::bytea[], $8::bytea[], $9::bytea[]) "
            "AS c(name_pk, n, step_min, step_max, steps, vals, kinds, timestamps) RETURNING name_pk, pk",
            self.run_pk, name_pks, [c.n for c in stored], [c.step_min for c in stored], [c.step_max for c in stored],
            [c.steps for c in stored], [c.values for c in stored], [c.kinds for c in stored],
            [c.timestamps for c in stored]))
        await conn.execute(
            "UPDATE metric_names m SET last_num = u.num, last_int = u.int, last_kind = u.kind, step_hi = u.hi, "
            "ordered = u.ordered, tail_pk = u.tail FROM unnest($1::int8[], $2::float8[], $3::int8[], $4::int2[], "
            "$5::float8[], $6::bool[], $7::int8[]) AS u(pk, num, int, kind, hi, ordered, tail) WHERE m.pk = u.pk",
            name_pks, [x[0] for x in self.lasts], [x[1] for x in self.lasts], [x[2] for x in self.lasts],
            step_his, ordered, [new_pks[pk] for pk in name_pks])
        return self.count


class _ParameterRows:
    def __init__(self, events: list[dict], experiment_pk: int, run_pk: int | None) -> None:
        self.experiment_pk, self.run_pk = experiment_pk, run_pk
        self.records = [orjson.dumps(e).decode() for e in events]

    async def write(self, conn: asyncpg.Connection) -> int:
        await conn.execute("INSERT INTO parameters (experiment_pk, run_pk, record) "
                           "SELECT $1, $2, r FROM unnest($3::text[]) WITH ORDINALITY AS u(r, i) ORDER BY i",
                           self.experiment_pk, self.run_pk, self.records)
        return len(self.records)


class _LogRows:
    def __init__(self, events: list[dict], experiment_pk: int, run_pk: int | None) -> None:
        self.experiment_pk, self.run_pk = experiment_pk, run_pk
        self.columns = ([e.get("timestamp") for e in events], [e.get("level") for e in events],
                        [e.get("message") for e in events],
                        [None if e.get("context") is None else orjson.dumps(e["context"]).decode() for e in events])

    async def write(self, conn: asyncpg.Connection) -> int:
        await conn.execute("INSERT INTO logs (experiment_pk, run_pk, timestamp, level, message, context) "
                           "SELECT $1, $2, t, l, m, c FROM unnest($3::float8[], $4::text[], $5::text[], $6::text[]) "
                           "WITH ORDINALITY AS u(t, l, m, c, i) ORDER BY i",
                           self.experiment_pk, self.run_pk, *self.columns)
        return len(self.columns[0])


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
