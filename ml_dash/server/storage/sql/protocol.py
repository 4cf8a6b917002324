"""The query protocol of the shared SQL core: bodies, queries, the drivers that run them, and the migration runner.

Shared code never touches a connection. It is written as generators ("bodies") that yield queries and get their
answers back, the pattern of ``series.cache.read_series``: SQLite runs a body synchronously on a worker thread
(``run_sync``), PostgreSQL awaits asyncpg on the event loop (``run_async``), and neither needs its own copy of the
logic. A query is one of

- ``(ROW, sql, args)``: the first row or None; ``(ROWS, sql, args)``: every row; ``(RUN, sql, args)``: the number of
  rows the statement changed. ``sql`` uses ``?`` placeholders; PostgreSQL's driver numbers them (``numbered``);
- ``(SCRIPT, text)``: several ``;``-separated statements (a migration);
- ``(CALL, fn)``: ``fn(conn)``, awaited on PostgreSQL, for backend code that has no shared form (the tuned metric
  writers, Python migrations).

Rows are tuples (SQLite) or ``asyncpg.Record`` (PostgreSQL); shared code reads them by position only. An error raised
while answering a query is raised inside the body, so its ``try``/``except`` sees it (the migration runner rolls back).

The bodies ``sql.storage.SQLStorage`` is made of run on either backend this way; ``migrations`` is the runner both
backends' ``migrate`` drive (PostgreSQL inside its advisory lock).
"""
from __future__ import annotations

import functools
import time
from typing import Any, Awaitable, Callable, Generator, Sequence, TypeVar

T = TypeVar("T")
Body = Generator[tuple, Any, T]

ROW, ROWS, RUN, SCRIPT, CALL = "row", "rows", "run", "script", "call"


# --- drivers ---

def run_sync(body: Body[T], answer: Callable[..., Any]) -> T:
    """Run ``body``, answering each query with ``answer(*query)``."""
    reply, error = None, None
    while True:
        try:
            if error is None:
                request = body.send(reply)
            else:
                request, error = body.throw(error), None
        except StopIteration as stop:
            return stop.value
        try:
            reply = answer(*request)
        except BaseException as exc:
            error = exc


async def run_async(body: Body[T], answer: Callable[..., Awaitable[Any]]) -> T:
    """``run_sync`` with an async ``answer``."""
    reply, error = None, None
    while True:
        try:
            if error is None:
                request = body.send(reply)
            else:
                request, error = body.throw(error), None
        except StopIteration as stop:
            return stop.value
        try:
            reply = await answer(*request)
        except BaseException as exc:
            error = exc


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1..$n`` (no shared statement has a ``?`` anywhere else)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


def reads(method: Callable[..., Body] | None = None, *, snapshot: bool = False, light: bool = False):
    """A read body as a ``Storage`` method, run by the backend's ``_read``. ``snapshot``: its queries must see one
    snapshot (SQLite reads always do; PostgreSQL then opens a REPEATABLE READ transaction). ``light``: a small
    lookup that ingest makes (the experiment, the run, the offsets): SQLite answers it on a reader of its own that
    heavy queries never hold."""
    def wrap(body: Callable[..., Body]):
        @functools.wraps(body)
        async def method(self, *args, **kwargs):
            return await self._read(body(self, *args, **kwargs), snapshot, light)

        return method

    return wrap if method is None else wrap(method)


def writes(body: Callable[..., Body]):
    """A write body as a ``Storage`` method, run by the backend's ``_write``."""
    @functools.wraps(body)
    async def method(self, *args, **kwargs):
        return await self._write(body(self, *args, **kwargs))

    return method


# --- migrations ---

def migrations(steps: Sequence[tuple[int, Any]], real: str, begin: str) -> Body[int]:
    """The migration runner: apply every migration newer than the database's version, each in its own transaction
    (opened by ``begin``) together with its ``schema_migrations`` row; return the version. A step is SQL text
    (statements separated by ``;``) or a function of the connection."""
    yield RUN, ("CREATE TABLE IF NOT EXISTS schema_migrations "
                f"(version INTEGER PRIMARY KEY, applied_at {real} NOT NULL)"), ()
    current = (yield ROW, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", ())[0]
    for version, step in steps:
        if version <= current:
            continue
        yield RUN, begin, ()
        try:
            yield (CALL, step) if callable(step) else (SCRIPT, step)
            yield RUN, "INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time())
            yield RUN, "COMMIT", ()
        except BaseException:
            yield RUN, "ROLLBACK", ()
            raise
        current = version
    return current
