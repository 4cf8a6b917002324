"""When to retry a request and how long to wait: capped exponential backoff with jitter, honouring ``Retry-After``.

Shared by the uploader (``client/upload/retry.py``) and the server's webhook deliveries (``server/alerts``), so both
retry by the same rules: connection errors, timeouts, 408, 425, 429 and 5xx are retried; other 4xx are not (the request
itself is wrong and sending it again cannot help).
"""
from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Backoff:
    """Delay before attempt ``n+1`` after ``n`` failures: ``min(cap, base * factor**(n-1))``, reduced by up to
    ``jitter`` (a fraction) so that many clients recovering together do not retry in lock-step."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5
    retry_after_cap: float = 300.0  # a server asking for longer than this is treated as asking for this
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        exponent = max(0, failures - 1)
        raw = self.cap if exponent > 64 else min(self.cap, self.base * self.factor ** exponent)
        delay = raw * (1.0 - self.jitter * self.rng.random())
        if retry_after is not None:
            # The server knows when it will be ready: never come back sooner than it asked.
            delay = max(delay, min(retry_after, self.retry_after_cap))
        return delay
