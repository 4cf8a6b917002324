"""Domain errors raised anywhere in the server; the app's error middleware maps each to one HTTP status."""
from __future__ import annotations


class ServerError(Exception):
    """Base class: ``status`` is the HTTP status the error middleware answers with."""

    status = 400

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra  # merged into the JSON error body, e.g. {"acked": 123} for a 409


class BadRequest(ServerError):
    status = 400


class BrokenBody(BadRequest):
    """The body stream itself is broken (e.g. bad gzip): answer, then close the connection instead of draining it."""


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


class PayloadTooLarge(ServerError):
    status = 413
