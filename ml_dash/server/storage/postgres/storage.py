"""PostgreSQL backend (asyncpg with a connection pool) for teams: several workers or machines share one database.

Everything that must hold across processes is enforced by the database, never by a process's memory:

- create-or-get experiment and create-run-by-``client_run_id`` are single ``INSERT ... ON CONFLICT`` statements, so two
  workers racing on the same key get the same row;
- a batch is one transaction that locks its stream's row (``INSERT ... ON CONFLICT DO UPDATE`` takes the row lock and
  reads the latest committed ``acked``), inserts the events and moves ``acked`` with ``UPDATE ... WHERE acked = start``:
  a replay sent to another worker waits for the first to commit, then reads the new offset and answers duplicate;
- a stored batch sends ``NOTIFY ml_dash_batch`` (delivered at its commit) naming its experiment and stream, and every
  server process LISTENs on one connection of its own (``watch_batches``): a batch sent ahead that waits on one host
  for its predecessor, stored by another, is woken at once instead of polling the database.

The queries are ``sql.storage``'s, awaited here on pooled connections (``driver.run``); what is PostgreSQL's own is
the pool, its dialect, those upserts and the array-``unnest`` row writers (metrics in ``metrics``).
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TypeVar

import asyncpg
import orjson

from ml_dash.server.config import SERIES_CACHE_MB
from ml_dash.server.errors import NotFound, QueryTimeout
from ml_dash.server.storage.postgres.driver import run
from ml_dash.server.storage.postgres.metrics import MetricRows, decode_last
from ml_dash.server.storage.postgres.migrations import migrate
from ml_dash.server.storage.postgres.dialect import PostgresDialect
from ml_dash.server.storage.sql.protocol import ROW, RUN, Body, writes
from ml_dash.server.storage.sql.media import INSERT_HISTOGRAM, INSERT_MEDIA, media_rows
from ml_dash.server.storage.sql.query import merged_params
from ml_dash.server.storage.sql.storage import RESTORED_BY_RUN, SQLStorage, log_row

T = TypeVar("T")
log = logging.getLogger("ml_dash.server")

# The channel carrying "a batch of this stream was stored" between processes; the payload is the JSON array
# [experiment_id, stream_id]. Channels are per database, not per schema: a deployment beside this one in another
# schema only causes a spurious wake-up (one more offset check), never a wrong answer.
BATCH_CHANNEL = "ml_dash_batch"
RECONNECT_S = 1.0  # between two attempts to get the listening connection back


class PostgresStorage(SQLStorage):
    """``url``: a libpq-style URL; extra query parameters become server settings (``?search_path=myschema``)."""

    # Creates the stream row at 0 if new, else locks it; either way returns the latest committed offset. A concurrent
    # batch of the same stream (any worker) waits here until this transaction ends.
    LOCK_STREAM = ("INSERT INTO streams (experiment_pk, stream_id, acked) VALUES (?, ?, 0) "
                   "ON CONFLICT (experiment_pk, stream_id) DO UPDATE SET acked = streams.acked RETURNING acked")
    LAST_METRICS = ("SELECT name, last_num, last_int, last_kind FROM metric_names "
                    "WHERE experiment_pk = ? AND last_kind IS NOT NULL ORDER BY name")
    SUMMARIES = "SELECT pk, n, step_min, step_max, summary, run_pk FROM metric_chunks WHERE name_pk = ?"
    VALUES = "vals"
    SORT_IN_SQL = True
    DIALECT = PostgresDialect()
    LAST_COLUMNS = "m.last_num, m.last_int, m.last_kind"
    LAST_WHERE = "AND m.last_kind IS NOT NULL"
    # gc's gate (sql.gc): a restore waits for the batch and the next batch sees it; an upload's foreign-key check
    # (KEY SHARE) does not wait. An upload that still races a batch makes it fail, and gc goes over it again.
    LOCK_ROW = " FOR NO KEY UPDATE"
    RACED = (asyncpg.ForeignKeyViolationError, asyncpg.DeadlockDetectedError)
    _decode_last = staticmethod(decode_last)

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10,
                 series_cache_mb: float = SERIES_CACHE_MB.default) -> None:
        super().__init__(series_cache_mb)
        self.url = url
        self.min_size, self.max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._watch: asyncio.Task | None = None
        self.listener_pid: int | None = None  # the listening connection's backend (observability, tests)

    @staticmethod
    def _in(column: str, values: list, sql_type: str) -> tuple[str, list]:
        return f"{column} = ANY(?::{sql_type}[])", [values]

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.url, min_size=self.min_size, max_size=self.max_size)
        try:
            async with self._pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await self._pool.close()
            raise

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def watch_batches(self, stored, live) -> None:
        if self._watch is None:
            first = asyncio.get_running_loop().create_future()
            self._watch = asyncio.get_running_loop().create_task(self._listen(stored, live, first))
            await first  # listening (or failed once, then retrying in the background) before the server answers

    async def _listen(self, stored, live, first: asyncio.Future) -> None:
        """Hold one connection LISTENing on ``BATCH_CHANNEL`` (not a pooled one: it must stay open), and get it back
        whenever it is lost; meanwhile ``live(False)`` lets waiting batches poll instead."""
        def notice(_conn, _pid, _channel, payload: str) -> None:
            try:
                experiment_id, stream_id = orjson.loads(payload)
            except (orjson.JSONDecodeError, TypeError, ValueError):
                return  # not ours (someone else's NOTIFY on the channel): nothing to wake
            stored(experiment_id, stream_id)

        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.url)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(BATCH_CHANNEL, notice)
                self.listener_pid = conn.get_server_pid()
                live(True)
                if not first.done():
                    first.set_result(None)
                await lost.wait()
                log.warning("ml-dash server: the PostgreSQL LISTEN connection was lost; batches sent ahead poll the "
                            "database until it is back")
            except Exception as exc:  # whatever broke it, keep trying: the notices are worth having back
                log.warning("ml-dash server: no PostgreSQL LISTEN connection (%s); batches sent ahead poll the "
                            "database until it is back", exc)
            finally:
                live(False)
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            if not first.done():
                first.set_result(None)
            await asyncio.sleep(RECONNECT_S)

    # how bodies run
    async def _read(self, body: Body[T], snapshot: bool = False, light: bool = False) -> T:
        """One read-only transaction whose statements stop at ``query_timeout`` (statement_timeout, ``SET LOCAL``:
        writes keep none). A caller cancelled meanwhile (a client that went away) cancels the statement: asyncpg
        sends PostgreSQL a cancel request rather than leaving it to run on."""
        try:
            async with self._pool.acquire() as conn:
                # ``snapshot``: one REPEATABLE READ snapshot (for a series: the cache check and the chunks), so a
                # batch committed meanwhile is seen wholly or not at all.
                async with conn.transaction(isolation="repeatable_read" if snapshot else None, readonly=True):
                    await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(self.query_timeout * 1000))}")
                    return await run(conn, body)
        except asyncpg.exceptions.QueryCanceledError:
            raise QueryTimeout(f"the query ran longer than {self.query_timeout:g} s (ML_DASH_QUERY_TIMEOUT) and was "
                               "stopped; narrow the filter or the scope") from None
        except asyncio.CancelledError:
            self.cancelled_reads += 1
            raise

    async def _write(self, body: Body[T]) -> T:
        async with self._pool.acquire() as conn:
            return await run(conn, body)

    async def _write_atomic(self, body: Body[T]) -> T:
        async with self._pool.acquire() as conn, conn.transaction():
            return await run(conn, body)

    # what PostgreSQL writes its own way
    @writes
    def create_experiment(self, namespace, workspace, directory, prefix, readme, hostname):
        # One statement, race-free across workers: the unique key picks the winner, xmax = 0 marks a fresh insert.
        row = yield ROW, (
            "INSERT INTO experiments (id, namespace, workspace, directory, prefix, readme, hostname, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, workspace, directory, prefix) "
            "DO UPDATE SET readme = COALESCE(EXCLUDED.readme, experiments.readme) RETURNING id, (xmax = 0) AS created"
        ), (uuid.uuid4().hex, namespace, workspace, directory, prefix, readme, hostname, time.time())
        return row[0], row[1]

    @writes
    def create_run(self, experiment_id, client_run_id, hostname, started_at, job=None):
        pk = yield from self._experiment_pk(experiment_id)
        started = time.time() if started_at is None else started_at
        # A retried create (possibly on another worker) returns the run the first one made; the no-op update makes
        # RETURNING answer for an existing row too.
        row = yield ROW, ("INSERT INTO runs (id, experiment_pk, client_run_id, status, hostname, started_at) "
                          "VALUES (?, ?, ?, 'RUNNING', ?, ?) ON CONFLICT (experiment_pk, client_run_id) "
                          "DO UPDATE SET client_run_id = EXCLUDED.client_run_id RETURNING id, (xmax = 0) AS created"), \
            (uuid.uuid4().hex, pk, client_run_id, hostname, started)
        if row[1]:
            yield RUN, RESTORED_BY_RUN, (pk, started)
            yield from self._set_run_job(row[0], job)
        return row[0]

    async def apply_batch(self, experiment_id, run_id, stream, stream_id, start, end, events):
        async with self._pool.acquire() as conn:
            pk, run_pk = await run(conn, self._batch_target(experiment_id, run_id))
            # Encode before the transaction so the row lock is held only while talking to the database.
            rows = {"metrics": MetricRows, "parameters": _ParameterRows, "logs": _LogRows,
                    "console": _ConsoleRows, "media": _MediaRows}[stream](events, pk, run_pk)
            try:
                async with conn.transaction():
                    result = await run(conn, self._batch(pk, stream_id, start, end, rows.write))
                    if not result.duplicate:  # delivered to every listener when (and only if) this commits
                        await conn.execute("SELECT pg_notify($1, $2)", BATCH_CHANNEL,
                                           orjson.dumps([experiment_id, stream_id]).decode())
                    return result
            except asyncpg.ForeignKeyViolationError:
                # Purged (``ml-dash server gc``) since the lookup above: as unknown as it is now. Keys are never
                # reused here (BIGSERIAL), so the rows could not have reached another experiment.
                raise NotFound(f"no experiment {experiment_id!r}") from None


# --- batch rows: built (and validated) before the transaction, written inside it with one multi-row INSERT each ---

class _ParameterRows:
    def __init__(self, events: list[dict], experiment_pk: int, run_pk: int | None) -> None:
        self.experiment_pk, self.run_pk = experiment_pk, run_pk
        self.events = events
        self.records = [orjson.dumps(e).decode() for e in events]

    async def write(self, conn: asyncpg.Connection) -> int:
        await conn.execute("INSERT INTO parameters (experiment_pk, run_pk, record) "
                           "SELECT $1, $2, r FROM unnest($3::text[]) WITH ORDINALITY AS u(r, i) ORDER BY i",
                           self.experiment_pk, self.run_pk, self.records)
        # The replayed parameters, kept current in the same transaction (the row lock orders two streams' batches)
        # so filters and orders on params.* run in SQL.
        current = await conn.fetchval("SELECT params FROM experiments WHERE pk = $1 FOR UPDATE", self.experiment_pk)
        await conn.execute("UPDATE experiments SET params = $1 WHERE pk = $2", merged_params(current, self.events),
                           self.experiment_pk)
        return len(self.records)


class _ConsoleRows:
    def __init__(self, events: list[tuple], experiment_pk: int, run_pk: int | None) -> None:
        self.experiment_pk, self.run_pk = experiment_pk, run_pk
        self.count = len(events)
        self.columns = [list(column) for column in zip(*events)] or [[], [], [], []]

    async def write(self, conn: asyncpg.Connection) -> int:
        await conn.execute("INSERT INTO console (experiment_pk, run_pk, rank, timestamp, stream, line) "
                           "SELECT $1, $2, r, t, s, l FROM unnest($3::int4[], $4::float8[], $5::text[], $6::text[]) "
                           "WITH ORDINALITY AS u(r, t, s, l, i) ORDER BY i",
                           self.experiment_pk, self.run_pk, *self.columns)
        return self.count


class _LogRows:
    def __init__(self, events: list[dict], experiment_pk: int, run_pk: int | None) -> None:
        self.experiment_pk, self.run_pk = experiment_pk, run_pk
        self.count = len(events)
        self.columns = [list(column) for column in zip(*map(log_row, events))] or [[], [], [], []]

    async def write(self, conn: asyncpg.Connection) -> int:
        await conn.execute("INSERT INTO logs (experiment_pk, run_pk, timestamp, level, message, context) "
                           "SELECT $1, $2, t, l, m, c FROM unnest($3::float8[], $4::text[], $5::text[], $6::text[]) "
                           "WITH ORDINALITY AS u(t, l, m, c, i) ORDER BY i",
                           self.experiment_pk, self.run_pk, *self.columns)
        return self.count


def _numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1``, ``$2``..."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


class _MediaRows:
    INSERT_MEDIA, INSERT_HISTOGRAM = _numbered(INSERT_MEDIA), _numbered(INSERT_HISTOGRAM)

    def __init__(self, events: list[dict], experiment_pk: int, run_pk: int | None) -> None:
        self.media, self.histograms = media_rows(experiment_pk, run_pk, events)

    async def write(self, conn: asyncpg.Connection) -> int:
        if self.media:
            await conn.executemany(self.INSERT_MEDIA, self.media)
        if self.histograms:
            await conn.executemany(self.INSERT_HISTOGRAM, self.histograms)
        return len(self.media)
