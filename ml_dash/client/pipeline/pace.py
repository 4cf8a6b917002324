"""The thread writer gives the GIL back every ~0.5 ms of work, so the training thread never waits longer for it.

A thread computing in Python keeps the GIL until another thread has waited the switch interval for it (5 ms by
default) and asked; the thread that logs then waits those 5 ms in the middle of a ``metrics.log``. The writer calls
``pace()`` between pieces of its work (a few hundred events each); once a slice of ``SLICE`` seconds is used up,
``time.sleep(0)`` releases the GIL and a waiting thread takes it at once (measured: a caller's worst wait for the
GIL went from 5.2 ms to 1.1 ms against a busy thread that did this every millisecond).

Only on a thread that asked for it (``pace_this_thread``): on an event loop's thread (the asyncio writer, or a
drain inline on the caller) handing the GIL to another thread would stall the loop instead.
"""
from __future__ import annotations

import threading
import time

SLICE = 0.0005  # seconds of work between two hand-overs

_sleep = time.sleep
_clock = time.perf_counter
_local = threading.local()


def pace_this_thread() -> None:
    """Start a slice: from now on ``pace()`` on this thread hands the GIL over once the slice is used up."""
    _local.deadline = _clock() + SLICE


def pace() -> None:
    """Between two pieces of writer work: let a thread waiting for the GIL have it, at most once per slice."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and _clock() >= deadline:
        _sleep(0)  # releases the GIL; a thread waiting for it takes it before this one gets it back
        _local.deadline = _clock() + SLICE
