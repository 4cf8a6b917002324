import asyncio
import email.utils
import random

import pytest

from ml_dash.client.upload.retry import (Backoff, GiveUp, Retrier, RetryableError, is_retryable_status,
                                   parse_retry_after)


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def failing(outcomes):
    """An attempt that raises the given errors in order, then returns "done"."""
    outcomes = list(outcomes)
    calls = []

    async def attempt():
        calls.append(1)
        if outcomes:
            raise outcomes.pop(0)
        return "done"

    attempt.calls = calls
    return attempt


def test_backoff_grows_exponentially_then_caps_without_jitter():
    """With jitter off, delays are base * factor**(n-1), capped."""
    backoff = Backoff(base=0.5, factor=2, cap=3, jitter=0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_jitter_stays_within_bounds():
    """Jitter only shortens a delay, by at most the jitter fraction."""
    backoff = Backoff(base=1, factor=2, cap=8, jitter=0.5, rng=random.Random(7))
    for n in range(1, 10):
        raw = min(8, 2 ** (n - 1))
        for _ in range(50):
            assert raw * 0.5 <= backoff.delay(n) <= raw


def test_backoff_never_comes_back_before_retry_after():
    """A Retry-After longer than the backoff wins; a shorter one does not shorten the backoff."""
    backoff = Backoff(base=0.1, cap=1, jitter=0)
    assert backoff.delay(1, retry_after=7.5) == 7.5
    assert backoff.delay(4, retry_after=0.01) == 0.8
    assert Backoff(jitter=0, retry_after_cap=60).delay(1, retry_after=3600) == 60


def test_parse_retry_after_seconds_and_http_date():
    """Retry-After is read as delta-seconds or an HTTP date; garbage is ignored."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)


def test_retryable_statuses():
    """429, 408 and 5xx are retried; other 4xx are not."""
    assert all(is_retryable_status(s) for s in (429, 408, 500, 502, 503, 504))
    assert not any(is_retryable_status(s) for s in (400, 401, 403, 404, 409, 413))


def test_retrier_retries_until_success_with_backoff_on_fake_clock():
    """Retryable failures are retried after the backoff's delays, honouring Retry-After, then the result returns."""
    clock = FakeClock()
    seen = []
    retrier = Retrier(backoff=Backoff(base=1, cap=10, jitter=0), sleep=clock.sleep, clock=clock.clock,
                      on_failure=lambda error, failures, delay: seen.append((failures, delay)))
    attempt = failing([RetryableError("reset"), RetryableError("429", 429, retry_after=5.0), RetryableError("503", 503)])
    assert asyncio.run(retrier.run(attempt)) == "done"
    assert clock.sleeps == [1, 5.0, 4]
    assert seen == [(1, 1), (2, 5.0), (3, 4)]
    assert len(attempt.calls) == 4


def test_retrier_does_not_retry_other_errors():
    """A non-retryable error propagates at once, without sleeping."""
    clock = FakeClock()
    attempt = failing([ValueError("HTTP 400")])
    with pytest.raises(ValueError):
        asyncio.run(Retrier(sleep=clock.sleep, clock=clock.clock).run(attempt))
    assert clock.sleeps == [] and len(attempt.calls) == 1


def test_retrier_gives_up_after_max_attempts():
    """A bounded retrier raises GiveUp carrying the last failure."""
    clock = FakeClock()
    attempt = failing([RetryableError(f"fail {i}") for i in range(10)])
    retrier = Retrier(backoff=Backoff(base=1, jitter=0), max_attempts=3, sleep=clock.sleep, clock=clock.clock)
    with pytest.raises(GiveUp) as info:
        asyncio.run(retrier.run(attempt))
    assert info.value.attempts == 3 and str(info.value.last) == "fail 2"
    assert clock.sleeps == [1, 2]


def test_retrier_stops_at_deadline():
    """No new attempt starts if its delay would pass the deadline."""
    clock = FakeClock()
    attempt = failing([RetryableError("down")] * 100)
    retrier = Retrier(backoff=Backoff(base=1, cap=4, jitter=0), deadline=10, sleep=clock.sleep, clock=clock.clock)
    with pytest.raises(GiveUp):
        asyncio.run(retrier.run(attempt))
    assert sum(clock.sleeps) <= 10
    assert clock.sleeps == [1, 2, 4]
