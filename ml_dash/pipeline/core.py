"""The process-wide event pipeline: a lock-free deque on the caller side, one writer thread draining it in batches.

The caller's cost is an ``append`` and one ``len`` compared with ``threshold``. Everything unusual — the first
event (start the writer), a full queue (back-pressure), a batch worth waking the writer for, an error to report, a
fork — is signalled by lowering ``threshold`` so the next call takes ``slow_path``.
"""
from __future__ import annotations

import atexit
import collections
import logging
import os
import sys
import threading
from typing import Callable, Protocol

from ml_dash._settings import setting

logger = logging.getLogger("ml_dash")

# Events: a metric row is a dict (see _jsonl_sink.split_metric_event); anything else is a tuple
# (store key, kind, a, b, c, d) of one of these kinds.
METRIC_AGG, RECORD, BARRIER = 1, 2, 3


class Sink(Protocol):
    """Where batches go. ``export`` runs on the writer thread; it must not raise for bad data."""

    def export(self, batch: list) -> None: ...

    def count_drop(self, event: dict | tuple) -> None: ...

    @property
    def has_pending(self) -> bool: ...

    def after_fork_in_child(self) -> None: ...

    def shutdown(self, timeout: float | None) -> None: ...


def _writer_kind(value: str) -> str:
    if value not in ("thread", "asyncio"):
        raise ValueError("writer must be 'thread' or 'asyncio'")
    return value


def _is_barrier(event: object) -> bool:
    return type(event) is tuple and event[1] == BARRIER


def _on_full_policy(value: str) -> str:
    if value not in ("block", "drop"):
        raise ValueError("on_full must be 'block' or 'drop'")
    return value


class Pipeline:
    def __init__(self, sink: Sink) -> None:
        self.queue: collections.deque = collections.deque()
        self.sink = sink
        self.capacity = setting("QUEUE_SIZE", None, 1_000_000, int)
        self.batch_size = min(setting("BATCH_SIZE", None, 20_000, int), self.capacity)
        self.interval = setting("FLUSH_INTERVAL", None, 0.2, float)
        self.on_full = setting("ON_FULL", None, "block", _on_full_policy)
        self.exit_timeout = setting("EXIT_TIMEOUT", None, 10.0, float)
        self.complete_timeout = setting("COMPLETE_TIMEOUT", None, 120.0, float)  # complete()/fail() never hang
        self.writer = setting("WRITER", None, "thread", _writer_kind)  # "asyncio": see ml_dash/_aio.py
        self.at_exit: list[Callable[[], None]] = []  # experiments finalising at exit, run after the drain
        self.exit_drained = True  # False once the drain at exit timed out: finalisers then wait for nothing more
        self._reset_threading()
        self._atexit_registered = False
        self._exited = False
        os.register_at_fork(before=self._before_fork, after_in_parent=self._after_fork_parent,
                            after_in_child=self._after_fork_child)

    def _reset_threading(self) -> None:
        self.threshold = 0  # 0 until the writer runs: the first call starts it
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # held by the writer while it drains; taken around fork()
        self._wake = threading.Event()
        self._wake_pending = False
        self._room = threading.Condition(threading.Lock())
        self._blocked = 0
        self._in_flight = 0
        self._error: BaseException | None = None
        self._reported_error: str | None = None

    # -- caller side ---------------------------------------------------------------------------------------
    def slow_path(self) -> None:
        """Everything the hot path does not do; reached only when ``len(queue) >= threshold``."""
        if self._thread is None:
            self._start()
        if self._error is not None:
            self._report_error()
        n = len(self.queue)
        if n > self.capacity:
            self._handle_full()
        elif n >= self.batch_size and not self._wake_pending:
            self._wake_pending = True
            self._wake.set()
        self.threshold = self.batch_size

    def _handle_full(self) -> None:
        if self.on_full == "drop":
            event = self.queue.pop()
            if _is_barrier(event):  # never drop a flush barrier: someone is waiting on it
                self.queue.append(event)
            else:
                self.sink.count_drop(event)
            return
        if threading.current_thread() is self._thread:  # an asyncio writer on this very thread: drain inline
            self._drain()
            return
        with self._room:
            self._blocked += 1
            try:
                self._wake.set()
                while len(self.queue) > self.capacity and self._thread is not None and self._thread.is_alive():
                    self._room.wait(0.05)
            finally:
                self._blocked -= 1

    def _report_error(self) -> None:
        message = f"ml-dash: the writer could not write: {self._error}"
        if message != self._reported_error:
            self._reported_error = message
            print(message + " (events are kept in memory and retried)", file=sys.stderr)

    def set_error(self, error: BaseException | None) -> None:
        """Called by sinks: an error is reported on the caller's next logging call, not raised into it."""
        self._error = error
        if error is not None:
            logger.warning("ml-dash writer error: %s", error)
            self.threshold = 0
        else:
            self._reported_error = None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged before this call is written; ``False`` if ``timeout`` ran out first."""
        if self.all_written():
            return True
        if threading.current_thread() is self._thread:
            self._drain()
            return True
        done = threading.Event()
        self.post_barrier(done)
        return done.wait(timeout) and self._error is None

    def all_written(self) -> bool:
        """Nothing queued, nothing held back by an error, no drain in progress (events leave the queue only under
        the lock). Without this check, flush(0) — how runs still open at exit end — would always time out."""
        if self._thread is None and not self.queue:
            return True
        if not self.queue and self._error is None and self._lock.acquire(blocking=False):
            self._lock.release()
            return True
        return False

    def post_barrier(self, signal: object) -> None:
        """Queue a flush barrier: the writer calls ``signal.set()`` once everything queued before it is written."""
        self.queue.append((None, BARRIER, signal, None, None, None))
        if self._thread is None:
            self._start()
        self._wake.set()

    def pending(self) -> int:
        """Events logged but not yet in the files: queued, or in the writer's hands."""
        return self._in_flight + sum(1 for e in list(self.queue) if not _is_barrier(e))

    # -- writer side ---------------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._room:
            if self._thread is not None:
                return
            if self.writer == "asyncio":  # a task on the running event loop (None: no loop here, use a thread)
                from ml_dash.pipeline.aio import start_writer_task

                self._thread = start_writer_task(self)
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="ml-dash-writer", daemon=True)
                self._thread = thread
                thread.start()
        if not self._atexit_registered:
            self._atexit_registered = True
            atexit.unregister(self._at_exit)  # a forked child inherits the parent's registration
            atexit.register(self._at_exit)
            if os.getpid() != _IMPORT_PID:
                # A forked multiprocessing worker (a DataLoader's) leaves through os._exit, skipping atexit;
                # multiprocessing's finalizers still run there.
                import multiprocessing.util

                multiprocessing.util.Finalize(None, self._at_exit, exitpriority=100)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._wake_pending = False
            try:
                self._drain()
            except BaseException as exc:  # never let the writer die: the caller would block forever
                logger.exception("ml-dash writer failed")
                self.set_error(exc)

    def _drain(self, limit: int | None = None) -> bool:
        """Write what is queued, in batches of at most ``limit`` (default ``batch_size``) events.

        With a ``limit``, write one batch and return whether more are waiting (the asyncio writer yields between).
        """
        queue = self.queue
        popleft = queue.popleft
        with self._lock:
            while queue:
                batch = [popleft() for _ in range(min(len(queue), limit or self.batch_size))]
                barriers = ()
                if tuple in set(map(type, batch)):  # C-level: only tuples can be barriers; most events are dicts
                    barriers = [e for e in batch if _is_barrier(e)]
                    if barriers:
                        batch = [e for e in batch if not _is_barrier(e)]
                if batch or self.sink.has_pending:  # retry held-back lines before releasing a flush barrier
                    self._in_flight = len(batch)
                    self.sink.export(batch)
                    self._in_flight = 0
                for event in barriers:
                    event[2].set()
                if self._blocked:
                    with self._room:
                        self._room.notify_all()
                if limit is not None:
                    return bool(queue)
            if self.sink.has_pending:  # nothing new queued, but lines a full disk refused last time
                self.sink.export([])
        return False

    def _at_exit(self) -> None:
        """Bounded drain at interpreter exit: report what is left instead of hanging."""
        if self._exited:
            return
        self._exited = True
        self.exit_drained = self._thread is None or self.flush(self.exit_timeout)
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
        self.at_exit.clear()
        self._reset_threading()
        self._atexit_registered = False
        self._exited = False
        self.sink.after_fork_in_child()


_IMPORT_PID = os.getpid()
