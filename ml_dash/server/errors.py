"""Domain errors raised anywhere in the server; the app's error middleware maps each to one HTTP status."""
from __future__ import annotations

import errno
import sqlite3


class ServerError(Exception):
    """Base class: ``status`` is the HTTP status the error middleware answers with."""

    status = 400
    close_connection = False  # True: the body may be unread (or unreadable): answer, then close, never drain it

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra  # merged into the JSON error body, e.g. {"acked": 123} for a 409


class BadRequest(ServerError):
    status = 400


class BrokenBody(BadRequest):
    """The body stream itself is broken (e.g. bad gzip): answer, then close the connection instead of draining it."""

    close_connection = True


class Unauthorized(ServerError):
    status = 401


class Forbidden(ServerError):
    status = 403


class NotFound(ServerError):
    status = 404


class StreamConflict(ServerError):
    """A batch that neither continues the stream nor replays it; the client resumes from ``acked``."""

    status = 409

    def __init__(self, message: str, acked: int) -> None:
        super().__init__(message, acked=acked)
        self.acked = acked


class RequestTimeout(ServerError):
    """The body did not arrive within the configured time (whole body, or idle between chunks)."""

    status = 408
    close_connection = True


class PayloadTooLarge(ServerError):
    """Refused for its size, often before the body is read to its end (reading, or inflating, the rest is wasted)."""

    status = 413
    close_connection = True


class QueryTimeout(ServerError):
    """A read ran past the server's ``query_timeout`` and was stopped; the server goes on answering."""

    status = 503


class InsufficientStorage(ServerError):
    """The server's disk (database or blob store) is full. Nothing was stored: the transaction rolled back."""

    status = 507


DISK_FULL_MESSAGE = ("the server's disk is full: nothing of this request was stored; retry once space is freed "
                     "(the data already stored is intact)")
_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DISK_FULL_SQLSTATE = "53100"  # PostgreSQL disk_full (asyncpg.exceptions.DiskFullError)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk is full: ``OSError(ENOSPC/EDQUOT)`` (blob
    writes, spooling), SQLite's "database or disk is full" (SQLITE_FULL), PostgreSQL's ``DiskFullError``."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", None) == 13  # SQLITE_FULL
                                               or "database or disk is full" in str(exc)):
            return True
        if getattr(exc, "sqlstate", None) == _DISK_FULL_SQLSTATE or type(exc).__name__ == "DiskFullError":
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
