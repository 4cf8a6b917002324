"""SQLite backend: WAL mode, one writer thread and a small pool of reader threads, each owning its own connection.

sqlite3 calls block, so they run off the event loop. A single writer thread serialises transactions (SQLite allows one
writer anyway); the reader threads (``ML_DASH_SQLITE_READERS``, default 3) keep chart reads from queueing behind
ingest or behind each other, which WAL makes safe. Each reader thread has its own query-only connection, and every
read runs in one transaction on it, so a read sees one snapshot: a batch committed meanwhile wholly or not at all.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import orjson

from ml_dash.server.errors import NotFound, StreamConflict
from ml_dash.server.series.cache import SeriesCache
from ml_dash.server.storage.base import (
    EXPERIMENT_SELECT,
    BatchResult,
    Storage,
    log_records,
)
from ml_dash.server.storage.sqlite.metrics import (  # noqa: F401
    MERGE_BELOW,
    SQLiteMetricReads,
    chunk_row,
    decode_value,
    encode_value,
    insert_metrics,
)
from ml_dash.server.storage.sqlite.migrations import migrate

T = TypeVar("T")

_EXPERIMENT_COLUMNS = ("pk", "id", "namespace", "workspace", "directory", "prefix", "readme", "created_at", "hostname",
                       "status", "started_at", "completed_at")
_RUN_COLUMNS = ("id", "status", "hostname", "started_at", "ended_at", "error")


READERS_ENV = "ML_DASH_SQLITE_READERS"
DEFAULT_READERS = 3


def _reader_count() -> int:
    raw = os.environ.get(READERS_ENV, "").strip()
    try:
        count = int(raw) if raw else DEFAULT_READERS
    except ValueError:
        count = 0
    if count < 1:
        from ml_dash.server.config import ConfigError

        raise ConfigError(f"{READERS_ENV} must be a positive number of reader threads, got {raw!r}")
    return count


class SQLiteStorage(SQLiteMetricReads, Storage):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ml-dash-sqlite-writer")
        self._reader = ThreadPoolExecutor(_reader_count(), thread_name_prefix="ml-dash-sqlite-reader")
        self._wconn: sqlite3.Connection | None = None
        self._local = threading.local()  # each reader thread's own connection
        self._rconns: list[sqlite3.Connection] = []
        self._rconns_lock = threading.Lock()
        self._series_cache = SeriesCache.from_env()  # per process; checked against the database on every read

    @property
    def _rconn(self) -> sqlite3.Connection:
        """The calling reader thread's connection, opened on its first read (query-only: writes stay on the writer)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(reader=True)
            self._local.conn = conn
            with self._rconns_lock:
                self._rconns.append(conn)
        return conn

    def _connect(self, reader: bool = False) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is exactly one transaction.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if reader:
            conn.execute("PRAGMA query_only=ON")  # the database is in WAL mode already (the writer set it)
            conn.execute("PRAGMA busy_timeout=10000")
            return conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an acked batch must survive a power cut, not just a crash
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _open_sync(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._wconn = self._connect()
        migrate(self._wconn)

    async def open(self) -> None:
        await self._write(lambda: self._open_sync())

    async def close(self) -> None:
        self._reader.shutdown(wait=True)  # no read in flight: their connections can be closed from here
        with self._rconns_lock:
            for conn in self._rconns:
                conn.close()
            self._rconns.clear()
        if self._wconn is not None:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._wconn.close)
        self._writer.shutdown(wait=True)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on a reader thread, in one read transaction (a snapshot) of that thread's connection."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._snapshot, fn, *args)

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._wconn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    @staticmethod
    def _experiment_pk(conn: sqlite3.Connection, experiment_id: str) -> int:
        row = conn.execute("SELECT pk FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        return row[0]

    # experiments and runs
    async def create_experiment(self, namespace, workspace, directory, prefix, readme, hostname):
        def body(conn: sqlite3.Connection) -> tuple[str, bool]:
            key = (namespace, workspace, directory, prefix)
            row = conn.execute("SELECT id FROM experiments WHERE namespace = ? AND workspace = ? AND directory = ? "
                               "AND prefix = ?", key).fetchone()
            if row is not None:
                if readme is not None:
                    conn.execute("UPDATE experiments SET readme = ? WHERE id = ?", (readme, row[0]))
                return row[0], False
            experiment_id = uuid.uuid4().hex
            conn.execute("INSERT INTO experiments (id, namespace, workspace, directory, prefix, readme, hostname, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (experiment_id, *key, readme, hostname, time.time()))
            return experiment_id, True

        return await self._write(self._transaction, body)

    def _experiments_sync(self, where: str, args: tuple, tail: str = "") -> list[dict[str, Any]]:
        rows = self._rconn.execute(f"SELECT * FROM ({EXPERIMENT_SELECT}) WHERE {where} {tail}", args).fetchall()
        return [dict(zip(_EXPERIMENT_COLUMNS, row)) for row in rows]

    async def get_experiment(self, experiment_id):
        found = await self._read(self._experiments_sync, "id = ?", (experiment_id,))
        if not found:
            raise NotFound(f"no experiment {experiment_id!r}")
        return found[0]

    async def list_experiments(self, namespaces, workspace, status, limit, offset):
        clauses, args = ["1"], []
        if namespaces is not None:
            clauses.append(f"namespace IN ({','.join('?' * len(namespaces))})")
            args.extend(sorted(namespaces))
        for column, value in (("workspace", workspace), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        return await self._read(self._experiments_sync, " AND ".join(clauses), (*args, limit, offset),
                                "ORDER BY created_at DESC, pk DESC LIMIT ? OFFSET ?")

    async def list_namespaces(self):
        def query() -> list[str]:
            return [r[0] for r in self._rconn.execute("SELECT DISTINCT namespace FROM experiments ORDER BY 1")]

        return await self._read(query)

    async def list_workspaces(self, namespace):
        def query() -> list[str]:
            sql = "SELECT DISTINCT workspace FROM experiments WHERE namespace = ? ORDER BY 1"
            return [r[0] for r in self._rconn.execute(sql, (namespace,))]

        return await self._read(query)

    async def create_run(self, experiment_id, client_run_id, hostname, started_at):
        def body(conn: sqlite3.Connection) -> str:
            pk = self._experiment_pk(conn, experiment_id)
            row = conn.execute("SELECT id FROM runs WHERE experiment_pk = ? AND client_run_id = ?",
                               (pk, client_run_id)).fetchone()
            if row is not None:
                return row[0]  # a retried create returns the run it already made
            run_id = uuid.uuid4().hex
            conn.execute("INSERT INTO runs (id, experiment_pk, client_run_id, status, hostname, started_at) "
                         "VALUES (?, ?, ?, 'RUNNING', ?, ?)", (run_id, pk, client_run_id, hostname,
                                                               time.time() if started_at is None else started_at))
            return run_id

        return await self._write(self._transaction, body)

    async def get_run(self, run_id):
        def query() -> dict[str, Any]:
            row = self._rconn.execute(
                "SELECT r.id, r.status, r.hostname, r.started_at, r.ended_at, r.error, e.id, e.namespace "
                "FROM runs r JOIN experiments e ON e.pk = r.experiment_pk WHERE r.id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            return dict(zip((*_RUN_COLUMNS, "experiment_id", "namespace"), row))

        return await self._read(query)

    async def update_run(self, run_id, status, error, ended_at):
        def body(conn: sqlite3.Connection) -> None:
            # A run that is no longer RUNNING keeps (or gets) an end time even if the client did not send one.
            end = ended_at if ended_at is not None or status == "RUNNING" else time.time()
            cursor = conn.execute("UPDATE runs SET status = ?, error = COALESCE(?, error), ended_at = ? WHERE id = ?",
                                  (status, error, end, run_id))
            if cursor.rowcount == 0:
                raise NotFound(f"no run {run_id!r}")

        await self._write(self._transaction, body)

    async def list_runs(self, experiment_id):
        def query() -> list[dict[str, Any]]:
            pk = self._experiment_pk(self._rconn, experiment_id)
            rows = self._rconn.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE experiment_pk = ? "
                                       "ORDER BY pk", (pk,))
            return [dict(zip(_RUN_COLUMNS, row)) for row in rows]

        return await self._read(query)

    # ingest
    async def apply_batch(self, experiment_id, run_id, stream, stream_id, start, end, events):
        return await self._write(self._transaction, lambda conn: self._apply_batch_sync(
            conn, experiment_id, run_id, stream, stream_id, start, end, events))

    def _apply_batch_sync(self, conn, experiment_id, run_id, stream, stream_id, start, end, events) -> BatchResult:
        pk = self._experiment_pk(conn, experiment_id)
        run_pk = None
        if run_id is not None:
            row = conn.execute("SELECT pk FROM runs WHERE id = ? AND experiment_pk = ?", (run_id, pk)).fetchone()
            if row is None:
                raise NotFound(f"no run {run_id!r} in experiment {experiment_id!r}")
            run_pk = row[0]
        row = conn.execute("SELECT acked FROM streams WHERE experiment_pk = ? AND stream_id = ?",
                           (pk, stream_id)).fetchone()
        acked = 0 if row is None else row[0]
        if start != acked:
            if end <= acked:
                return BatchResult(acked=acked, stored=0, duplicate=True)
            raise StreamConflict(f"batch starts at {start} but stream {stream_id!r} is acked up to {acked}", acked)
        stored = {"metrics": _insert_metrics_here, "parameters": _insert_parameters, "logs": _insert_logs}[stream](
            conn, pk, run_pk, events)
        # The offset moves only from the value we read: the primary key and this WHERE make a second writer
        # (another process, a future PostgreSQL twin) fail instead of storing the same batch twice.
        if row is None:
            conn.execute("INSERT INTO streams (experiment_pk, stream_id, acked) VALUES (?, ?, ?)", (pk, stream_id, end))
        elif conn.execute("UPDATE streams SET acked = ? WHERE experiment_pk = ? AND stream_id = ? AND acked = ?",
                          (end, pk, stream_id, start)).rowcount != 1:
            raise StreamConflict(f"stream {stream_id!r} moved during the batch", acked)
        return BatchResult(acked=end, stored=stored)

    async def stream_offsets(self, experiment_id):
        def query() -> dict[str, int]:
            pk = self._experiment_pk(self._rconn, experiment_id)
            return dict(self._rconn.execute("SELECT stream_id, acked FROM streams WHERE experiment_pk = ?", (pk,)))

        return await self._read(query)

    # reads
    async def parameter_ops(self, experiment_id):
        def query() -> list[dict[str, Any]]:
            pk = self._experiment_pk(self._rconn, experiment_id)
            rows = self._rconn.execute("SELECT record FROM parameters WHERE experiment_pk = ? ORDER BY pk", (pk,))
            return [orjson.loads(r[0]) for r in rows]

        return await self._read(query)

    async def logs(self, experiment_id, level, limit):
        def query() -> list[dict[str, Any]]:
            pk = self._experiment_pk(self._rconn, experiment_id)
            sql, args = "SELECT timestamp, level, message, context FROM logs WHERE experiment_pk = ?", [pk]
            if level is not None:
                sql, args = sql + " AND level = ?", [*args, level]
            # The newest `limit` entries, returned oldest first like a log file.
            sql += " ORDER BY pk DESC" + (" LIMIT ?" if limit is not None else "")
            rows = self._rconn.execute(sql, [*args, limit] if limit is not None else args).fetchall()
            return log_records(rows)

        return await self._read(query)

    # files
    async def put_file(self, experiment_id, path, size, sha256):
        def body(conn: sqlite3.Connection) -> None:
            pk = self._experiment_pk(conn, experiment_id)
            conn.execute("INSERT INTO files (experiment_pk, path, size, sha256, updated_at) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (experiment_pk, path) DO UPDATE SET size = excluded.size, "
                         "sha256 = excluded.sha256, updated_at = excluded.updated_at", (pk, path, size, sha256, time.time()))

        await self._write(self._transaction, body)

    async def get_file(self, experiment_id, path):
        found = [f for f in await self.list_files(experiment_id, path) if f["path"] == path]
        if not found:
            raise NotFound(f"no file {path!r} in experiment {experiment_id!r}")
        return found[0]

    async def list_files(self, experiment_id, path: str | None = None):
        def query() -> list[dict[str, Any]]:
            pk = self._experiment_pk(self._rconn, experiment_id)
            sql, args = "SELECT path, size, sha256 FROM files WHERE experiment_pk = ?", [pk]
            if path is not None:
                sql, args = sql + " AND path = ?", [*args, path]
            rows = self._rconn.execute(sql + " ORDER BY path", args)
            return [{"path": p, "size": s, "sha256": h} for p, s, h in rows]

        return await self._read(query)


def _insert_parameters(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict]) -> int:
    conn.executemany("INSERT INTO parameters (experiment_pk, run_pk, record) VALUES (?, ?, ?)",
                     [(experiment_pk, run_pk, orjson.dumps(e).decode()) for e in events])
    return len(events)


def _insert_logs(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict]) -> int:
    conn.executemany("INSERT INTO logs (experiment_pk, run_pk, timestamp, level, message, context) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     [(experiment_pk, run_pk, e.get("timestamp"), e.get("level"), e.get("message"),
                       None if e.get("context") is None else orjson.dumps(e["context"]).decode()) for e in events])
    return len(events)


def _insert_metrics_here(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict]) -> int:
    # MERGE_BELOW is read from this module at each batch, so a test can monkeypatch it here (chunk_row and
    # decode_value are imported above for _sqlite_schema's migration).
    return insert_metrics(conn, experiment_pk, run_pk, events, MERGE_BELOW)
