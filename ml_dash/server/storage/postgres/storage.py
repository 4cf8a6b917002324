"""PostgreSQL backend (asyncpg with a connection pool) for teams: several workers or machines share one database.

Everything that must hold across processes is enforced by the database, never by a process's memory:

- create-or-get experiment and create-run-by-``client_run_id`` are single ``INSERT ... ON CONFLICT`` statements, so two
  workers racing on the same key get the same row;
- a batch is one transaction that locks its stream's row (``INSERT ... ON CONFLICT DO UPDATE`` takes the row lock and
  reads the latest committed ``acked``), inserts the events and moves ``acked`` with ``UPDATE ... WHERE acked = start``:
  a replay sent to another worker waits for the first to commit, then reads the new offset and answers duplicate.

Metrics are columnar chunks (one row per batch and metric name, numpy arrays as BYTEA), as in the SQLite backend;
their code is in ``_postgres_metrics``.
"""
from __future__ import annotations

import functools
import time
import uuid
from typing import Any

import asyncpg
import orjson

from ml_dash.server.errors import BadRequest, NotFound, StreamConflict
from ml_dash.server.series.cache import SeriesCache
from ml_dash.server.storage.base import (
    EXPERIMENT_SELECT,
    BatchResult,
    Storage,
    log_records,
)
from ml_dash.server.storage.postgres.metrics import MetricRows, PostgresMetricReads
from ml_dash.server.storage.postgres.migrations import migrate

_RUN_COLUMNS = "id, status, hostname, started_at, ended_at, error"


class PostgresStorage(PostgresMetricReads, Storage):
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
        rows = await self._pool.fetch(f"SELECT * FROM ({EXPERIMENT_SELECT}) x WHERE {where} {tail}", *args)
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
            insert = {"metrics": MetricRows, "parameters": _ParameterRows, "logs": _LogRows}[stream](events, pk, run_pk)
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
        return log_records(rows)

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

