"""asyncio support: an awaitable flush, and (optionally) the writer as a task on the running event loop.

``metrics.log`` stays a plain synchronous call in async code: it appends to a deque and returns; nothing here
changes that. What an event loop needs besides is a way to *wait* for the writer without blocking the loop:

* ``await exp.flush_async()`` queues a barrier like ``flush()`` does, but the writer signals it back to the loop
  with ``loop.call_soon_threadsafe`` instead of setting a ``threading.Event`` someone blocks on.
* ``ML_DASH_WRITER=asyncio`` (or ``ml_dash.use_asyncio_writer()``): the next time the writer starts inside a running loop it
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

from ml_dash.client.pipeline.writer import WriterHost

logger = logging.getLogger("ml_dash")

CHUNK = 1024  # events encoded per turn of the loop by the asyncio writer (~1-2 ms of the loop)


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


async def flush_async(pipeline, timeout: float | None = None) -> bool:
    """Wait until everything logged before this call is written, without blocking the event loop.

    ``False`` if ``timeout`` ran out first or the writer reports an error (as ``flush()``).
    """
    if pipeline.all_written():
        return True
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    pipeline.post_barrier(_LoopSignal(loop, future))
    try:
        await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        return False
    return pipeline.error is None


class AsyncioWriter:
    """The writer as a task on the loop it was started from (see ``start_writer_task``)."""

    def __init__(self, host: WriterHost, loop: asyncio.AbstractEventLoop) -> None:
        self._host = host
        self._loop = loop
        self.owner = threading.current_thread()
        self._event = asyncio.Event()
        self._task = loop.create_task(self._run(), name="ml-dash-writer")

    def wake(self) -> None:
        if threading.current_thread() is self.owner:
            self._event.set()
        else:
            try:
                self._loop.call_soon_threadsafe(self._event.set)
            except RuntimeError:  # loop closed; the task has handed the pipeline back already
                pass

    def is_alive(self) -> bool:
        return not self._task.done()

    async def _run(self) -> None:
        host, event = self._host, self._event
        limit = max(1, min(host.batch_size, CHUNK))
        try:
            while True:
                if not event.is_set():
                    try:
                        await asyncio.wait_for(event.wait(), host.interval)
                    except asyncio.TimeoutError:
                        pass
                event.clear()
                while host.writer_turn(limit):
                    await asyncio.sleep(0)  # let the loop's other tasks run between chunks
        finally:
            # The loop is ending (asyncio.run cancels its tasks): write what is left, then hand the pipeline back so
            # the next logging call starts a fresh writer.
            host.writer_turn()
            host.writer_stopped(self)


def start_writer_task(host: WriterHost) -> AsyncioWriter | None:
    """Start the writer as a task on the running loop; ``None`` outside one (the pipeline then starts a thread).

    The writer's ``owner`` is the loop's thread: a flush or a full queue met on that thread drains inline instead of
    waiting for a task that cannot run while the loop is busy.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return AsyncioWriter(host, loop)
