"""When to retry a request and how long to wait: capped exponential backoff with jitter, honouring ``Retry-After``.

Retried: connection errors, timeouts, 429 and 5xx — the server may be restarting or overloaded, and every request
the uploader makes is idempotent (batches name their offsets, runs their ``client_run_id``). Not retried: other 4xx;
the request itself is wrong and sending it again cannot help, so the caller reports it.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

# The rules themselves live in format/retry.py: the server's webhook deliveries retry by them too.
from ml_dash.format.retry import RETRYABLE_STATUSES, Backoff, is_retryable_status, parse_retry_after  # noqa: F401


class RetryableError(Exception):
    """A failed attempt worth repeating (connection error, timeout, 429, 5xx)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class GiveUp(Exception):
    """The retry budget (``max_attempts`` / ``deadline``) ran out; ``last`` is the final failure."""

    def __init__(self, last: RetryableError, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts: {last}")
        self.last = last
        self.attempts = attempts


@dataclass
class Retrier:
    """Runs an attempt until it succeeds, raises a non-retryable error, or the budget runs out.

    ``sleep`` and ``clock`` are injectable so tests run without real waiting; ``on_failure(error, failures,
    delay)`` observes each failed attempt (the uploader uses it for its one "server unreachable" warning)."""

    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int | None = None  # None: retry forever (the background uploader; the data is safe on disk)
    deadline: float | None = None  # absolute ``clock()`` time after which no new attempt starts
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    on_failure: Callable[[RetryableError, int, float], None] | None = None

    async def run(self, attempt: Callable[[], Awaitable]):
        failures = 0
        while True:
            try:
                return await attempt()
            except RetryableError as error:
                failures += 1
                delay = self.backoff.delay(failures, error.retry_after)
                out_of_attempts = self.max_attempts is not None and failures >= self.max_attempts
                out_of_time = self.deadline is not None and self.clock() + delay > self.deadline
                if self.on_failure is not None:
                    self.on_failure(error, failures, delay)
                if out_of_attempts or out_of_time:
                    raise GiveUp(error, failures) from error
                await self.sleep(delay)
