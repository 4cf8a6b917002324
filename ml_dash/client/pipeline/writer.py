"""The contract between the queue (``Pipeline``) and whatever drains it: a thread, or a task on an event loop.

A writer calls its host's ``writer_turn`` whenever it is woken (or its interval passes) and ``writer_stopped`` if it
ends before the process does; the host calls the writer's ``wake`` from any thread. Neither touches the other's
private state, so a new kind of writer needs nothing but these two small protocols.
"""
from __future__ import annotations

import threading
from typing import Callable, Protocol


class WriterHost(Protocol):
    """What a writer may use of the pipeline."""

    interval: float  # seconds between turns when nobody wakes the writer
    batch_size: int

    def writer_turn(self, limit: int | None = None) -> bool:
        """Write what is queued (one batch of at most ``limit`` events when given); ``True`` if more is waiting."""

    def set_error(self, error: BaseException | None) -> None:
        """Report a failure the turn itself could not handle (the writer goes on)."""

    def writer_stopped(self, writer: "Writer") -> None:
        """The writer has ended (its event loop closed): the next logging call starts a new one."""


class Writer(Protocol):
    owner: threading.Thread  # a flush or a full queue met on this thread drains inline instead of waiting

    def wake(self) -> None:
        """Ask for a turn soon; callable from any thread."""

    def is_alive(self) -> bool: ...


# Builds and starts a writer for a host; returns None when it cannot run here (an asyncio writer with no loop).
WriterFactory = Callable[[WriterHost], "Writer | None"]
