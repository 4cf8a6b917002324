"""asyncio support: an awaitable flush, and (optionally) the writer as a task on the running event loop.

``metrics.log`` stays a plain synchronous call in async code: it appends to a deque and returns; nothing here
changes that. What an event loop needs besides is a way to *wait* for the writer without blocking the loop:

* ``await exp.flush_async()`` queues a barrier like ``flush()`` does, but the writer signals it back to the loop
  with ``loop.call_soon_threadsafe`` instead of setting a ``threading.Event`` someone blocks on.
* ``use_asyncio_writer()`` (or ``ML_DASH_WRITER=asyncio``): the next time the writer starts inside a running loop it
  is a task on that loop instead of a thread. It drains in chunks of at most ``CHUNK`` events and yields to the loop
  between chunks, so other tasks keep running. The files are the same as the thread writer's: the same sink
  encodes the same events in the same order. When the loop ends (``asyncio.run`` cancels the task) the task
  writes what is left and the next logging call outside that loop starts an ordinary writer thread.
  Called with no running loop, the writer is a thread as usual.
"""
from __future__ import annotations

import asyncio
import logging
import threading

from ml_dash._runtime import PIPELINE
from ml_dash.pipeline.core import Pipeline

logger = logging.getLogger("ml_dash")

CHUNK = 2048  # events encoded per turn of the loop by the asyncio writer


def use_asyncio_writer(enabled: bool = True) -> None:
    """Run the writer as a task on the running event loop (from the next start of the writer on)."""
    PIPELINE.writer = "asyncio" if enabled else "thread"


class _LoopSignal:
    """A flush barrier's ``done``: the writer calls ``set()`` from any thread; the loop's future resolves."""

    __slots__ = ("_loop", "_future")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        self._loop = loop
        self._future = future

    def set(self) -> None:
        try:
            self._loop.call_soon_threadsafe(_resolve, self._future)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _resolve(future: asyncio.Future) -> None:
    if not future.done():  # a timed-out wait cancelled it
        future.set_result(None)


async def flush_async(timeout: float | None = None, pipeline: Pipeline = PIPELINE) -> bool:
    """Wait until everything logged before this call is written, without blocking the event loop.

    ``False`` if ``timeout`` ran out first or the writer reports an error (as ``flush()``).
    """
    p = pipeline
    if p.all_written():
        return True
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    p.post_barrier(_LoopSignal(loop, future))
    try:
        await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        return False
    return p._error is None


class _LoopWake:
    """Stands in for the pipeline's ``threading.Event`` while the writer is a task: ``set()`` from any thread."""

    __slots__ = ("_loop", "_thread_id", "event")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread_id = threading.get_ident()
        self.event = asyncio.Event()

    def set(self) -> None:
        if threading.get_ident() == self._thread_id:
            self.event.set()
        else:
            try:
                self._loop.call_soon_threadsafe(self.event.set)
            except RuntimeError:  # loop closed; the task has handed the pipeline back already
                pass

    def is_set(self) -> bool:
        return self.event.is_set()

    def clear(self) -> None:
        self.event.clear()


def start_writer_task(p: Pipeline) -> threading.Thread | None:
    """Called by ``Pipeline._start`` (under its lock): start the writer task; ``None`` outside a running loop.

    Returns the loop's thread, which the pipeline keeps as its writer "thread": a flush or a full queue met on that
    thread drains inline instead of waiting for a task that cannot run while the loop is busy.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    owner = threading.current_thread()
    wake = _LoopWake(loop)
    p._wake = wake
    loop.create_task(_writer(p, wake, owner), name="ml-dash-writer")
    return owner


async def _writer(p: Pipeline, wake: _LoopWake, owner: threading.Thread) -> None:
    limit = max(1, min(p.batch_size, CHUNK))
    try:
        while True:
            if not wake.is_set():
                try:
                    await asyncio.wait_for(wake.event.wait(), p.interval)
                except asyncio.TimeoutError:
                    pass
            wake.clear()
            p._wake_pending = False
            try:
                while p._drain(limit):
                    await asyncio.sleep(0)  # let the loop's other tasks run between chunks
            except Exception as exc:  # never let the writer die: flushes would wait forever
                logger.exception("ml-dash writer failed")
                p.set_error(exc)
    finally:
        # The loop is ending (asyncio.run cancels its tasks): write what is left, then hand the pipeline back so
        # the next logging call starts a fresh writer.
        try:
            p._drain()
        except Exception:
            logger.exception("ml-dash: the asyncio writer's last drain failed")
        with p._room:
            if p._thread is owner:
                p._wake = threading.Event()
                p._thread = None
                p.threshold = 0
