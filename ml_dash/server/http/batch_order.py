"""Batches sent ahead: a client with several batches of one stream in flight marks all but the first ``ahead``; one
that arrives (or finishes decoding) before the batch it continues has been stored waits here for its turn instead of
being answered ``409`` at once.

The offsets stay the database's business (``storage.apply_batch`` checks ``start`` against the acknowledged offset in
its transaction): this only retries the apply when a batch of the same stream may have been stored, until
``order_wait`` seconds have passed or the client went away. Then the ``409`` stands and the client resumes from the
offset it names, as before. A batch not marked ``ahead`` never waits: a real gap is answered at once.

News that a batch was stored comes from this process's own stores and, where the database carries it
(``Storage.watch_batches``: PostgreSQL's LISTEN/NOTIFY), from every other worker or host on the same database. So
when a load balancer sends consecutive batches of a stream to different hosts, the one that came early wakes as soon
as its predecessor commits elsewhere. Without that news (SQLite, or while the listening connection is being
re-established) a waiting batch looks again every ``POLL_S``; with it, only every ``NOTICE_POLL_S``, in case a
notice was lost.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ml_dash.server.errors import StreamConflict
from ml_dash.server.storage.base import BatchResult

POLL_S = 0.1  # how often a waiting batch looks again when other processes' stores are not announced
NOTICE_POLL_S = 2.0  # how often it looks again anyway while they are (a safety net, never the usual path)


class BatchOrder:
    """Per (experiment, stream id): an event set each time this process stored a batch of that stream."""

    def __init__(self) -> None:
        self._stored: dict[tuple[str, str], asyncio.Event] = {}
        self._waiting: dict[tuple[str, str], int] = {}
        self.noticed = False  # whether every process's stores are announced to this one (``Storage.watch_batches``)
        self.retries = 0  # applies tried again after a 409 (observability: each is one offset check in the database)

    def stored(self, experiment_id: str, stream_id: str) -> None:
        """News from the database: some process stored a batch of this stream. Wakes its waiters here, if any."""
        event = self._stored.pop((experiment_id, stream_id), None)
        if event is not None:
            event.set()

    def live(self, noticed: bool) -> None:
        self.noticed = noticed

    async def apply(self, key: tuple[str, str], start: int, ahead: bool, wait: float,
                    apply: Callable[[], Awaitable[BatchResult]], gone: Callable[[], bool]) -> BatchResult:
        """``apply()`` now, or for an ``ahead`` batch whose predecessor is not stored yet, again each time it may
        have been, for at most ``wait`` seconds or until ``gone()`` (the client closed the connection)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            news = self._stored.setdefault(key, asyncio.Event())  # taken before the attempt: no store is missed
            try:
                result = await apply()
            except StreamConflict as conflict:
                remaining = deadline - loop.time()
                if not ahead or conflict.acked >= start or remaining <= 0 or gone():
                    self._forget(key)
                    raise
                await self._wait(key, news, min(NOTICE_POLL_S if self.noticed else POLL_S, remaining))
                self.retries += 1
                continue
            self._stored.pop(key, news).set()  # wakes this stream's waiters; the next attempt takes a fresh event
            self._forget(key)
            return result

    async def _wait(self, key: tuple[str, str], news: asyncio.Event, timeout: float) -> None:
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            await asyncio.wait_for(news.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]

    def _forget(self, key: tuple[str, str]) -> None:
        """Keep an event only while someone may wait on it: a server sees many streams, each for a while."""
        if key not in self._waiting:
            event = self._stored.get(key)
            if event is not None and not event.is_set():
                del self._stored[key]


def client_gone(request: Any) -> Callable[[], bool]:
    def gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    return gone
