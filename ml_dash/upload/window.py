"""Several batches of one stream in flight, acknowledged in file order.

One batch at a time left both sides idle half the time: the server waited for the next body while the client waited
for the answer to the last. A ``Flights`` queue holds up to ``window`` consecutive byte ranges of a stream's file, each
sent by its own task (with its own retries: a retry resends the same range); the uploader settles them oldest first,
and the local state moves only to offsets the server answered, so nothing is acknowledged out of order. All but the
oldest are marked ``ahead`` and a server that says it orders batches (``"ordered"`` in ``GET …/streams``) holds them
until their predecessor is stored, so they arrive in any order without a ``409``. Exactly-once is still the server's
offset check: a range sent twice (a retry, a resend after a drop) is stored once.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class Flight:
    """One batch: its byte range ``[start, end)`` of the file, lines, cap reached, the body sent, the request."""

    start: int
    end: int
    count: int
    full: bool
    body: dict
    task: asyncio.Task


class Flights(deque):
    """A stream's batches in flight, oldest first."""

    @property
    def next_start(self) -> int | None:
        return self[-1].end if self else None

    def send(self, flight_body: dict, start: int, end: int, count: int, full: bool, call: Any) -> Flight:
        if self:
            flight_body["ahead"] = True  # the server may hold it until the batch before it is stored
        task = asyncio.get_running_loop().create_task(call(flight_body))
        task.add_done_callback(_retrieve)
        flight = Flight(start, end, count, full, flight_body, task)
        self.append(flight)
        return flight

    def drop(self) -> None:
        """Give up on every batch in flight (their answers are not awaited): the next send starts again from the
        acknowledged offset, and the server stores at most once whatever of them it had already stored."""
        while self:
            self.popleft().task.cancel()


def _retrieve(task: asyncio.Task) -> None:
    # A dropped batch's failure is not news (the range is sent again): do not let asyncio log it as unretrieved.
    if not task.cancelled():
        task.exception()
