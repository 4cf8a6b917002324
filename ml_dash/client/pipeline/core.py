"""The process-wide event pipeline: a lock-free deque on the caller side, one writer draining it in batches.

The caller's cost is an ``append`` and one ``len`` compared with ``threshold``. Everything unusual — the first
event (start the writer), a full queue (back-pressure), a batch worth waking the writer for, an error to report, a
fork — is signalled by lowering ``threshold`` so the next call takes ``slow_path``.

The writer is pluggable (``pipeline.writer``): a thread by default, a task on the running event loop with
``ML_DASH_WRITER=asyncio``. The sink (``set_sink``) is what turns batches into files; the queue knows neither.
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import sys
import threading
from typing import Callable, Iterator, Protocol

from ml_dash.client.events import BARRIER_SIGNAL, barrier_event, is_barrier, media_bytes
from ml_dash.settings import (
    BATCH_SIZE,
    COMPLETE_TIMEOUT,
    EXIT_TIMEOUT,
    FLUSH_INTERVAL,
    MEDIA_QUEUE_BYTES,
    ON_FULL,
    QUEUE_SIZE,
    WRITER,
)
from ml_dash.client.pipeline.pace import pace
from ml_dash.client.pipeline.thread import ThreadWriter
from ml_dash.client.pipeline.writer import Writer, WriterFactory

logger = logging.getLogger("ml_dash")

_POP_PIECE = 4096  # events taken off the queue between two chances for the writer to hand over the GIL


class Sink(Protocol):
    """Where batches go. ``export`` runs on the writer; it must not raise for bad data."""

    def export(self, batch: list) -> None:
        """Write a batch; may clear the list's items as it goes (so they are freed in pieces, not all at once)."""

    def count_drop(self, event: dict | tuple) -> None: ...

    def dropped(self, store_key: int) -> int:
        """Events of one store dropped so far by the ``drop`` back-pressure policy."""

    @property
    def has_pending(self) -> bool: ...

    def close_store(self, store_key: int) -> None:
        """fsync and close one store's files (called while the writer is held off)."""

    def after_fork_in_child(self) -> None: ...

    def shutdown(self, timeout: float | None) -> None: ...


def _asyncio_writer(host) -> Writer | None:
    from ml_dash.client.pipeline.aio import (
        start_writer_task,  # asyncio is imported only when this writer is chosen
    )

    return start_writer_task(host)


WRITERS: dict[str, WriterFactory] = {"thread": ThreadWriter, "asyncio": _asyncio_writer}


class Pipeline:
    """The queue and its writer, configured by plain values: ``capacity`` events before back-pressure, which is
    ``on_full`` (``"block"`` the caller or ``"drop"`` the event); ``batch_size`` events per writer batch; the writer
    wakes every ``interval`` seconds; ``exit_timeout`` / ``complete_timeout`` bound the drains at exit and in
    ``complete()``; ``writer_kind`` is a key of ``WRITERS``. The defaults are the settings' (ml_dash/settings.py);
    only ``pipeline.process`` reads the environment."""

    def __init__(self, sink: Sink | None = None, *, capacity: int = QUEUE_SIZE.default,
                 batch_size: int = BATCH_SIZE.default, interval: float = FLUSH_INTERVAL.default,
                 on_full: str = ON_FULL.default, exit_timeout: float = EXIT_TIMEOUT.default,
                 complete_timeout: float = COMPLETE_TIMEOUT.default, writer_kind: str = WRITER.default,
                 byte_budget: int = MEDIA_QUEUE_BYTES.default) -> None:
        self.queue: collections.deque = collections.deque()
        self.sink: Sink = sink  # type: ignore[assignment]  # set_sink() before the first event
        self.capacity = capacity
        self.batch_size = min(batch_size, capacity)
        self.interval = interval
        self.on_full = ON_FULL.convert(on_full)  # the same check, and message, as for ML_DASH_ON_FULL
        self.exit_timeout = exit_timeout
        self.complete_timeout = complete_timeout  # complete()/fail() never hang
        self.writer_kind = WRITER.convert(writer_kind)
        # Media events hold captured arrays: their bytes are bounded too, by ``byte_budget`` (``append_sized``).
        self.byte_budget = byte_budget
        self.queued_bytes = 0  # captured bytes queued or in the writer's hands
        self.sized_dropped = 0  # media events the ``drop`` policy dropped for want of bytes
        self.sized_dropped_bytes = 0
        self.sized_waits = 0  # times a media call waited for the writer to free bytes (``block``)
        self._bytes_lock = threading.Lock()
        self.at_exit: list[Callable[[], None]] = []  # experiments finalising at exit, run after the drain
        self.exit_drained = True  # False once the drain at exit timed out: finalisers then wait for nothing more
        self._reset_threading()
        self._atexit_registered = False
        self._exited = False
        os.register_at_fork(before=self._before_fork, after_in_parent=self._after_fork_parent,
                            after_in_child=self._after_fork_child)

    def set_sink(self, sink: Sink) -> None:
        self.sink = sink

    def _reset_threading(self) -> None:
        self.threshold = 0  # 0 until the writer runs: the first call starts it
        self.writer: Writer | None = None
        self._lock = threading.Lock()  # held by the writer while it drains; taken around fork()
        self._wake_pending = False
        self._room = threading.Condition(threading.Lock())
        self._blocked = 0
        self._in_flight = 0
        self._error: BaseException | None = None
        self._reported_error: str | None = None

    def _on_writer_thread(self) -> bool:
        writer = self.writer
        return writer is not None and threading.current_thread() is writer.owner

    # -- caller side ---------------------------------------------------------------------------------------
    def slow_path(self) -> None:
        """Everything the hot path does not do; reached only when ``len(queue) >= threshold``."""
        if self.writer is None:
            self._start()
        if self._error is not None:
            self._report_error()
        n = len(self.queue)
        if n > self.capacity:
            self._handle_full()
        elif n >= self.batch_size and not self._wake_pending:
            self._wake_pending = True
            self.writer.wake()
        self.threshold = self.batch_size

    def _handle_full(self) -> None:
        if self.on_full == "drop":
            try:
                event = self.queue.pop()
            except IndexError:  # the writer emptied the queue since we looked: nothing to drop
                return
            if is_barrier(event):  # never drop a flush barrier: someone is waiting on it
                self.queue.append(event)
            else:
                self.sink.count_drop(event)
            return
        if self._on_writer_thread():  # an asyncio writer on this very thread: drain inline
            self._drain()
            return
        with self._room:
            self._blocked += 1
            try:
                self.writer.wake()
                while len(self.queue) > self.capacity and self.writer is not None and self.writer.is_alive():
                    self._room.wait(0.05)
            finally:
                self._blocked -= 1

    def append_sized(self, event: tuple, nbytes: int) -> bool:
        """Queue an event holding ``nbytes`` of captured data (media) within ``byte_budget``: past it, ``on_full``
        applies by bytes (wait for the writer to write enough, or drop and count the event). An event bigger than
        the whole budget still goes in when nothing else is queued. ``False`` if the event was dropped."""
        while not self._reserve(nbytes):
            if self.on_full == "drop":
                with self._bytes_lock:
                    self.sized_dropped += 1
                    self.sized_dropped_bytes += nbytes
                self.sink.count_drop(event)
                return False
            self._wait_for_bytes()
        self.queue.append(event)
        if len(self.queue) >= self.threshold:
            self.slow_path()
        return True

    def _reserve(self, nbytes: int) -> bool:
        with self._bytes_lock:
            if self.queued_bytes and self.queued_bytes + nbytes > self.byte_budget:
                return False
            self.queued_bytes += nbytes
            return True

    def _release(self, nbytes: int) -> None:
        with self._bytes_lock:
            self.queued_bytes -= nbytes

    def _wait_for_bytes(self) -> None:
        """``block`` by bytes: wake the writer and wait until it has written something (or drain inline when the
        writer is a task on this very thread)."""
        if self.writer is None:
            self._start()
        if self._on_writer_thread():
            self._drain()
            return
        with self._room:
            self.sized_waits += 1
            self._blocked += 1
            try:
                self.writer.wake()
                self._room.wait(0.05)
            finally:
                self._blocked -= 1

    def _report_error(self) -> None:
        message = f"ml-dash: the writer could not write: {self._error}"
        if message != self._reported_error:
            self._reported_error = message
            print(message + " (events are kept in memory and retried)", file=sys.stderr)

    def set_error(self, error: BaseException | None) -> None:
        """Called by sinks and writers: an error is reported on the caller's next logging call, not raised into it."""
        self._error = error
        if error is not None:
            logger.warning("ml-dash writer error: %s", error)
            self.threshold = 0
        else:
            self._reported_error = None

    @property
    def error(self) -> BaseException | None:
        """The writer's last error, until a write succeeds again."""
        return self._error

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged before this call is written; ``False`` if ``timeout`` ran out first."""
        if self.all_written():
            return True
        if self._on_writer_thread():
            self._drain()
            return True
        done = threading.Event()
        self.post_barrier(done)
        return done.wait(timeout) and self._error is None

    def all_written(self) -> bool:
        """Nothing queued, nothing held back by an error, no drain in progress (events leave the queue only under
        the lock). Without this check, flush(0) — how runs still open at exit end — would always time out."""
        if self.writer is None and not self.queue:
            return True
        if not self.queue and self._error is None and self._lock.acquire(blocking=False):
            self._lock.release()
            return True
        return False

    def post_barrier(self, signal: object) -> None:
        """Queue a flush barrier: the writer calls ``signal.set()`` once everything queued before it is written."""
        self.queue.append(barrier_event(signal))
        if self.writer is None:
            self._start()
        self.writer.wake()

    def pending(self) -> int:
        """Events logged but not yet in the files: queued, or in the writer's hands."""
        return self._in_flight + sum(1 for e in list(self.queue) if not is_barrier(e))

    @contextlib.contextmanager
    def writer_held(self, timeout: float | None = None) -> Iterator[bool]:
        """Hold the writer off (it finishes its current batch first); yields ``False`` if that took past ``timeout``."""
        acquired = self._lock.acquire(timeout=-1 if timeout is None else timeout)
        try:
            yield acquired
        finally:
            if acquired:
                self._lock.release()

    # -- writer side ---------------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._room:
            if self.writer is not None:
                return
            writer = WRITERS[self.writer_kind](self)
            self.writer = writer if writer is not None else ThreadWriter(self)  # asyncio with no loop: a thread
        self.ensure_exit_hook()

    def ensure_exit_hook(self) -> None:
        """Register the exit drain (which runs ``at_exit``) once per process. The writer's start does it, and so does
        a run's start: a run that logged nothing must still be ended (failed, on an uncaught exception) at exit."""
        if not self._atexit_registered:
            self._atexit_registered = True
            atexit.unregister(self.exit_drain)  # a forked child inherits the parent's registration
            atexit.register(self.exit_drain)
            if os.getpid() != _IMPORT_PID:
                # A forked multiprocessing worker (a DataLoader's) leaves through os._exit, skipping atexit;
                # multiprocessing's finalizers still run there.
                import multiprocessing.util

                multiprocessing.util.Finalize(None, self.exit_drain, exitpriority=100)

    def writer_turn(self, limit: int | None = None) -> bool:
        """One turn of the writer (see ``WriterHost``): never raises, reports instead."""
        self._wake_pending = False
        try:
            return self._drain(limit)
        except Exception as exc:  # never let the writer die: flushes would wait forever
            logger.exception("ml-dash writer failed")
            self.set_error(exc)
            return False

    def writer_stopped(self, writer: Writer) -> None:
        with self._room:
            if self.writer is writer:
                self.writer = None
                self.threshold = 0

    def _drain(self, limit: int | None = None) -> bool:
        """Write what is queued, in batches of at most ``limit`` (default ``batch_size``) events.

        With a ``limit``, write one batch and return whether more are waiting (the asyncio writer yields between).
        """
        queue = self.queue
        popleft = queue.popleft
        with self._lock:
            while queue:
                batch, barriers, sized = _take(popleft, min(len(queue), limit or self.batch_size))
                if batch or self.sink.has_pending:  # retry held-back lines before releasing a flush barrier
                    self._in_flight = len(batch)
                    try:
                        self.sink.export(batch)  # consumes the batch (drops its references as it goes)
                    finally:
                        if sized:
                            self._release(sized)
                    self._in_flight = 0
                for event in barriers:
                    event[BARRIER_SIGNAL].set()
                if self._blocked:
                    with self._room:
                        self._room.notify_all()
                if limit is not None:
                    return bool(queue)
            if self.sink.has_pending:  # nothing new queued, but lines a full disk refused last time
                self.sink.export([])
        return False

    def exit_drain(self) -> None:
        """Bounded drain at interpreter exit (registered with atexit): report what is left instead of hanging."""
        if self._exited:
            return
        self._exited = True
        self.exit_drained = self.writer is None or self.flush(self.exit_timeout)
        if not self.exit_drained:
            print(f"ml-dash: {self.pending()} events were still pending after {self.exit_timeout:.0f}s at exit "
                  "and were not written (writer stuck?)", file=sys.stderr)
        for finalise in list(self.at_exit):
            try:
                finalise()
            except Exception:
                logger.exception("ml-dash: finalising an experiment at exit failed")
        self.sink.shutdown(self.exit_timeout)

    # -- fork ---------------------------------------------------------------------------------------------
    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_parent(self) -> None:
        self._lock.release()

    def _after_fork_child(self) -> None:
        # The parent's writer writes what was queued before fork(); the child must not write it twice.
        self.queue.clear()
        self.queued_bytes = 0  # the cleared events' bytes are the parent's
        self._bytes_lock = threading.Lock()
        self.at_exit.clear()
        self._reset_threading()
        self._atexit_registered = False
        self._exited = False
        if self.sink is not None:
            self.sink.after_fork_in_child()


def _take(popleft: Callable[[], object], count: int) -> tuple[list, list, int]:
    """``count`` events off the queue: (the batch, the flush barriers among them, the captured bytes its media
    events hold), in pieces with ``pace()``
    between, as 20k pops and a Python-level filter over them would keep the GIL for milliseconds."""
    batch: list = []
    barriers: list = []
    sized = 0
    while count > 0:
        piece = [popleft() for _ in range(min(count, _POP_PIECE))]
        count -= len(piece)
        if tuple in set(map(type, piece)):  # C-level: only tuples can be barriers or media; most events are dicts
            found = [e for e in piece if is_barrier(e)]
            if found:
                barriers += found
                piece = [e for e in piece if not is_barrier(e)]
            sized += media_bytes(piece)
        batch += piece
        pace()
    return batch, barriers, sized


_IMPORT_PID = os.getpid()
