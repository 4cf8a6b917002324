"""A stream's batches: whole lines read from its file by byte range, and several of them in flight, acknowledged in
file order.

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


def extends_acked(path: str, acked: int) -> bool:
    """Whether the file still holds the ``acked`` bytes the server has: at least that long, with a line ending
    where they end (the writer only appends, so anything else means the file was replaced or truncated)."""
    try:
        with open(path, "rb") as f:
            f.seek(acked - 1)
            return f.read(1) == b"\n"
    except FileNotFoundError:
        return False


def read_batch(path: str, start: int, max_events: int, max_bytes: int) -> tuple[bytes, int, int, bool]:
    """Whole lines from ``start``, as the file's bytes: at most ``max_events`` lines / about ``max_bytes``; returns
    (lines, line count, end, full), ``full`` meaning a cap was reached (more may follow at once).

    The bytes go to the server as they are (it parses them): parsing here would cost the training process about
    2 µs of GIL time per event. An unterminated tail is left for later (the writer may be finishing it); blank or
    corrupt complete lines travel too and the server skips them, so a torn line left by a crash never stalls the
    stream."""
    window = max_bytes
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(window)
        except FileNotFoundError:
            return b"", 0, start, False
        cut = data.rfind(b"\n")
        if cut >= 0 or len(data) < window:
            break
        window *= 2  # a single line longer than the window: take it whole
    if cut < 0:
        return b"", 0, start, False
    full = len(data) >= window
    data = data[:cut + 1]
    count = data.count(b"\n")
    if count > max_events:  # cut after the max_events-th line
        position = -1
        for _ in range(max_events):
            position = data.index(b"\n", position + 1)
        data, count, full = data[:position + 1], max_events, True
    return data, count, start + len(data), full



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
