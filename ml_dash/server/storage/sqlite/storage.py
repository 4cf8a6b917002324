"""SQLite backend: WAL mode, one writer thread and a small pool of reader threads, each owning its own connection.

sqlite3 calls block, so they run off the event loop. A single writer thread serialises transactions (SQLite allows one
writer anyway); the reader threads (``ML_DASH_SQLITE_READERS``, default 3) keep chart reads from queueing behind
ingest or behind each other, which WAL makes safe. Each reader thread has its own query-only connection, and every
read runs in one transaction on it, so a read sees one snapshot: a batch committed meanwhile wholly or not at all.

The queries are ``sql.storage``'s, run here synchronously on those threads (``run_sync``); what is SQLite's own is the
threads and connections, its dialect and the statements PostgreSQL writes differently (create-or-get, row inserts).
"""
from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import orjson

from ml_dash.server.config import SERIES_CACHE_MB, SQLITE_READERS
from ml_dash.server.errors import QueryTimeout
from ml_dash.server.storage.sql.protocol import ROW, RUN, Body, run_sync, writes
from ml_dash.server.storage.sql.media import INSERT_HISTOGRAM, INSERT_MEDIA, media_rows
from ml_dash.server.storage.sql.query import merged_params
from ml_dash.server.storage.sql.storage import RESTORED_BY_RUN, SQLStorage, log_row
from ml_dash.server.storage.sqlite.driver import answerer
from ml_dash.server.storage.sqlite.metrics import (
    MERGE_BELOW,
    decode_value,
    insert_metrics,
)
from ml_dash.server.storage.sqlite.migrations import migrate
from ml_dash.server.storage.sqlite.dialect import SQLiteDialect

T = TypeVar("T")

PROGRESS_STEPS = 10_000  # virtual machine steps between two checks of a read's deadline (well under a millisecond)


class SQLiteStorage(SQLStorage):
    # The writer is alone: reading the offset is enough, the transaction (BEGIN IMMEDIATE) holds the write lock.
    LOCK_STREAM = "SELECT acked FROM streams WHERE experiment_pk = ? AND stream_id = ?"
    LAST_METRICS = "SELECT name, last_value, last_kind FROM metric_names WHERE experiment_pk = ? ORDER BY name"
    # run_pk from the chunk row by its key (a column before the point BLOBs): what a RunView clips by
    SUMMARIES = ("SELECT chunk_pk, n, step_min, step_max, summary, "
                 "(SELECT run_pk FROM metric_chunks WHERE pk = chunk_pk) FROM metric_summaries WHERE name_pk = ?")
    VALUES = '"values"'
    SORT_IN_SQL = False
    DIALECT = SQLiteDialect()
    LAST_COLUMNS = "m.last_value, m.last_kind"
    PURGE_WITH_CHUNKS = [("metric_summaries", "chunk_pk",
                          "name_pk IN (SELECT pk FROM metric_names WHERE experiment_pk = ?)")]
    _decode_last = staticmethod(decode_value)

    def __init__(self, path: str, readers: int = SQLITE_READERS.default,
                 series_cache_mb: float = SERIES_CACHE_MB.default) -> None:
        super().__init__(series_cache_mb)
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ml-dash-sqlite-writer")
        self._reader = ThreadPoolExecutor(readers, thread_name_prefix="ml-dash-sqlite-reader")
        # Ingest's own lookups (``reads(light=True)``): heavy pages holding every reader never hold up a batch.
        self._light_reader = ThreadPoolExecutor(1, thread_name_prefix="ml-dash-sqlite-light-reader")
        self._wconn: sqlite3.Connection | None = None
        self._wanswer: Callable[..., Any] | None = None
        self._local = threading.local()  # each reader thread's own connection and its answerer
        self._rconns: list[sqlite3.Connection] = []
        self._rconns_lock = threading.Lock()

    @staticmethod
    def _in(column: str, values: list, sql_type: str) -> tuple[str, list]:
        return f"{column} IN ({', '.join('?' * len(values))})", values

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
        self._wanswer = answerer(self._wconn)
        migrate(self._wconn)

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer, self._open_sync)

    async def close(self) -> None:
        self._reader.shutdown(wait=True)  # no read in flight: their connections can be closed from here
        self._light_reader.shutdown(wait=True)
        with self._rconns_lock:
            for conn in self._rconns:
                conn.close()
            self._rconns.clear()
        if self._wconn is not None:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._wconn.close)
        self._writer.shutdown(wait=True)

    # how bodies run
    async def read(self, fn: Callable[[sqlite3.Connection], T], light: bool = False) -> T:
        """Run ``fn(conn)`` on a reader thread, in one read transaction (a snapshot) of that thread's own query-only
        connection ``conn``: every read of this storage runs this way. A batch committed meanwhile is seen wholly or
        not at all. The read is stopped (``QueryTimeout``) past ``query_timeout`` seconds, and as soon as its caller
        is cancelled (a client that went away): SQLite's progress handler checks both while the statement runs."""
        stop = threading.Event()
        deadline = time.monotonic() + self.query_timeout
        future = asyncio.get_running_loop().run_in_executor(self._light_reader if light else self._reader,
                                                            self._snapshot, fn, deadline, stop)
        try:
            return await future
        except asyncio.CancelledError:
            # Counted here, not where the statement stops: a read cancelled before its thread picked it up never
            # runs at all (the executor drops it), and that is a cancelled read too.
            self.cancelled_reads += 1
            stop.set()  # the thread is not interrupted by the cancellation itself: the progress handler stops it
            raise

    def _snapshot(self, fn: Callable[[sqlite3.Connection], T], deadline: float = math.inf,
                  stop: threading.Event | None = None) -> T:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None:  # the thread's first read: its connection (writes stay on the writer)
            conn = local.conn = self._connect(reader=True)
            local.answer = answerer(conn)
            local.deadline, local.stop = math.inf, None
            conn.set_progress_handler(lambda: self._stopping(local), PROGRESS_STEPS)
            with self._rconns_lock:
                self._rconns.append(conn)
        if conn.in_transaction:
            return fn(conn)
        local.deadline, local.stop = deadline, stop
        conn.execute("BEGIN")
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if str(exc) != "interrupted":
                raise
            if stop is not None and stop.is_set():
                raise QueryTimeout("the read was cancelled: its client went away") from None
            raise QueryTimeout(f"the query ran longer than {self.query_timeout:g} s (ML_DASH_QUERY_TIMEOUT) and was "
                               "stopped; narrow the filter or the scope") from None
        finally:
            local.deadline, local.stop = math.inf, None  # the COMMIT is never interrupted
            conn.execute("COMMIT")

    @staticmethod
    def _stopping(local: threading.local) -> bool:
        """SQLite's progress handler (every ``PROGRESS_STEPS`` virtual machine steps): true stops the statement."""
        return time.monotonic() > local.deadline or (local.stop is not None and local.stop.is_set())

    async def _read(self, body: Body[T], snapshot: bool = False, light: bool = False) -> T:
        return await self.read(lambda conn: run_sync(body, self._local.answer), light)

    async def _write(self, body: Body[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._transaction, body)

    def _transaction(self, body: Body[T]) -> T:
        conn = self._wconn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = run_sync(body, self._wanswer)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # what SQLite writes its own way
    @writes
    def create_experiment(self, namespace, workspace, directory, prefix, readme, hostname):
        # Select-then-insert is race-free here: the writer is alone, inside BEGIN IMMEDIATE.
        key = (namespace, workspace, directory, prefix)
        row = yield ROW, ("SELECT id FROM experiments WHERE namespace = ? AND workspace = ? AND directory = ? "
                          "AND prefix = ?"), key
        if row is not None:
            if readme is not None:
                yield RUN, "UPDATE experiments SET readme = ? WHERE id = ?", (readme, row[0])
            return row[0], False
        experiment_id = uuid.uuid4().hex
        yield RUN, ("INSERT INTO experiments (id, namespace, workspace, directory, prefix, readme, hostname, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), (experiment_id, *key, readme, hostname, time.time())
        return experiment_id, True

    @writes
    def create_run(self, experiment_id, client_run_id, hostname, started_at, job=None):
        pk = yield from self._experiment_pk(experiment_id)
        row = yield ROW, "SELECT id FROM runs WHERE experiment_pk = ? AND client_run_id = ?", (pk, client_run_id)
        if row is not None:
            return row[0]  # a retried create returns the run it already made
        run_id = uuid.uuid4().hex
        started = time.time() if started_at is None else started_at
        yield RUN, ("INSERT INTO runs (id, experiment_pk, client_run_id, status, hostname, started_at) "
                    "VALUES (?, ?, ?, 'RUNNING', ?, ?)"), (run_id, pk, client_run_id, hostname, started)
        yield RUN, RESTORED_BY_RUN, (pk, started)
        yield from self._set_run_job(run_id, job)
        return run_id

    async def apply_batch(self, experiment_id, run_id, stream, stream_id, start, end, events):
        def body() -> Body:
            pk, run_pk = yield from self._batch_target(experiment_id, run_id)
            write = _WRITERS[stream]
            return (yield from self._batch(pk, stream_id, start, end, lambda conn: write(conn, pk, run_pk, events)))

        return await self._write(body())  # one transaction: offsets, lookups and rows


def _insert_parameters(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict]) -> int:
    conn.executemany("INSERT INTO parameters (experiment_pk, run_pk, record) VALUES (?, ?, ?)",
                     [(experiment_pk, run_pk, orjson.dumps(e).decode()) for e in events])
    # The replayed parameters, kept current in the same transaction so filters and orders on params.* run in SQL.
    current = conn.execute("SELECT params FROM experiments WHERE pk = ?", (experiment_pk,)).fetchone()[0]
    conn.execute("UPDATE experiments SET params = ? WHERE pk = ?", (merged_params(current, events), experiment_pk))
    return len(events)


def _insert_logs(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict]) -> int:
    conn.executemany("INSERT INTO logs (experiment_pk, run_pk, timestamp, level, message, context) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [(experiment_pk, run_pk, *log_row(e)) for e in events])
    return len(events)


def _insert_metrics(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict]) -> int:
    # MERGE_BELOW is read from this module at each batch, so a test can monkeypatch it here.
    return insert_metrics(conn, experiment_pk, run_pk, events, MERGE_BELOW)


def _insert_console(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, rows: list[tuple]) -> int:
    conn.executemany("INSERT INTO console (experiment_pk, run_pk, rank, timestamp, stream, line) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [(experiment_pk, run_pk, *row) for row in rows])
    return len(rows)


def _insert_media(conn: sqlite3.Connection, experiment_pk: int, run_pk: int | None, events: list[dict]) -> int:
    media, histograms = media_rows(experiment_pk, run_pk, events)
    conn.executemany(INSERT_MEDIA, media)
    conn.executemany(INSERT_HISTOGRAM, histograms)
    return len(media)


_WRITERS = {"metrics": _insert_metrics, "parameters": _insert_parameters, "logs": _insert_logs,
            "console": _insert_console, "media": _insert_media}
