"""Console capture: a run's stdout and stderr, at the file-descriptor level, tee'd to the terminal and stored as rows of
the ``console`` stream (docs/distributed.md).

``start`` points file descriptors 1 and 2 at the write ends of two pipes (``dup2``), so what C extensions, ``os.write``
and child processes write is caught as well as ``print``. One daemon thread reads both pipes: it writes every byte
to the original descriptor first (the terminal shows everything, whatever happens to the rest), then queues the whole
lines it read as one record per read (not one per line: a print storm costs one event per ~64 KB) through the normal
queue. It never makes the program wait on ml-dash: a full queue or a spent byte budget sheds the text (counted, with
one marker line), and the terminal still gets it. ``stop`` puts the descriptors back, reads what is left in the pipes
(a traceback printed just before exit is in there) and returns; a child process still holding a pipe keeps being
tee'd to the terminal by the thread, stored no more.
"""
from __future__ import annotations

import atexit
import os
import select
import sys
import threading
from time import time as _time

from ml_dash.client.events import record_event
from ml_dash.client.pipeline.process import PIPELINE
from ml_dash.client.run.starter import start_soon
from ml_dash.settings import CONSOLE, CONSOLE_BUDGET

_READ = 65536
_MAX_PARTIAL = 16384  # a line longer than this is stored in pieces rather than held back
DRAIN_TIMEOUT = 2.0  # how long stop() reads what is left in the pipes (a child may keep them open)


def console_settings(console: bool | None) -> tuple[bool, int]:
    """(on, budget in bytes): the ``console`` argument, else ML_DASH_CONSOLE; ML_DASH_CONSOLE_BUDGET."""
    if console is not None and not isinstance(console, bool):
        raise TypeError(f"Experiment: console must be True or False, got {type(console).__name__} {console!r}")
    budget = CONSOLE_BUDGET.get()
    if budget < 0:
        raise ValueError(f"{CONSOLE_BUDGET.env_var} must be 0 or more bytes, got {budget}")
    return CONSOLE.get(console), budget


class ConsoleCapture:
    """The capture of one run (see the module doc). ``stored``/``shed``: bytes queued and bytes left out so far."""

    def __init__(self, store_key: int, budget: int) -> None:
        self.store_key = store_key
        self.budget = budget
        self.stored = 0
        self.shed = 0
        self.lines = 0  # whole lines queued (benchmarks count them against what the server stored)
        self._marked = False
        self._saved: dict[int, int] = {}  # fd -> a duplicate of what it pointed to before the capture
        self._reads: dict[int, tuple[int, str]] = {}  # pipe read end -> (the saved fd to tee to, "stdout"/"stderr")
        self._partial: dict[int, bytes] = {}
        self._stopping = threading.Event()
        self._stored_all = threading.Event()  # the thread read both pipes to their end, or gave up storing
        self._storing = True
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_started = False
        self._stopped = False

    def start(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)  # what Python buffered so far belongs before the capture, on the terminal
        try:
            for fd, name in ((1, "stdout"), (2, "stderr")):
                saved = os.dup(fd)
                self._saved[fd] = saved
                read, write = os.pipe()
                os.set_inheritable(saved, False)
                os.dup2(write, fd)  # fd stays inheritable: a child process's output comes through the pipe
                os.close(write)
                self._reads[read] = (saved, name)
        except OSError:
            self._restore()
            for read in list(self._reads):
                os.close(read)
            self._reads.clear()
            raise
        self._thread = threading.Thread(target=self._main, name="ml-dash-console", daemon=True)
        start_soon(self._start_thread)  # run() does not wait for it: the pipes hold what is written until it runs
        # Also at exit (idempotent; the run's end usually stopped it first): fds back and the pipes read to the
        # terminal before the interpreter ends this daemon thread, or a last traceback would be lost for good.
        atexit.register(self.stop)

    def _start_thread(self) -> None:
        with self._lock:
            if not self._thread_started:
                self._thread_started = True
                self._thread.start()

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Put fds 1 and 2 back, then wait (at most ``timeout``) for what is left in the pipes to be queued."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)
        self._restore()  # our copies of the write ends are gone: a pipe ends once no child holds it either
        self._stopping.set()
        if self._thread is not None:
            self._start_thread()  # not started yet (the starter thread is busy): the pipes still need reading
            if self._thread is not threading.current_thread():
                self._stored_all.wait(timeout)
        with self._lock:
            self._storing = False  # a child still writing is tee'd from now on, not stored into the ended run
            self._flush_partials()
            if self.shed:
                self._queue("stderr", f"[ml-dash: {self.shed} bytes of console output were not stored: the budget "
                                      f"of {self.budget} bytes per run was spent]\n".encode(), force=True)

    def terminal(self, text: str) -> None:
        """Write ``text`` to the terminal's stderr only, not into the run's console: ml-dash's own notices."""
        _flush(sys.stderr)
        _write_all(self._saved.get(2, 2), text.encode("utf-8", "replace"))

    def add(self, name: str, text: str) -> None:
        """Store ``text`` (whole lines) as if the program had written it to ``name`` (not shown on the terminal)."""
        with self._lock:
            if self._storing:
                self._queue(name, text.encode("utf-8", "replace"))

    def _restore(self) -> None:
        for fd, saved in list(self._saved.items()):
            try:
                os.dup2(saved, fd)
            except OSError:
                pass
        self._saved.clear()

    def _main(self) -> None:
        reads = dict(self._reads)
        try:
            while reads:
                try:
                    ready, _, _ = select.select(list(reads), [], [], 0.1 if self._stopping.is_set() else 1.0)
                except InterruptedError:
                    continue
                if not ready and self._stopping.is_set():
                    # fds are back: what is still open is held by a child; stop storing, keep teeing
                    self._stored_all.set()
                for read in ready:
                    try:
                        data = os.read(read, _READ)
                    except OSError:
                        data = b""
                    saved, name = reads[read]
                    if not data:
                        os.close(read)
                        del reads[read]
                        if saved not in self._saved.values():
                            try:
                                os.close(saved)
                            except OSError:
                                pass
                        continue
                    _write_all(saved, data)  # the terminal first: it sees everything, stored or not
                    with self._lock:
                        if self._storing:
                            self._take(read, name, data)
        finally:
            self._stored_all.set()

    def _take(self, read: int, name: str, data: bytes) -> None:
        partial = self._partial.pop(read, b"")
        data = partial + data if partial else data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) < _MAX_PARTIAL:
            self._partial[read] = data
            return
        if cut == 0:
            cut = len(data)
        if cut < len(data):
            self._partial[read] = data[cut:]
        self._queue(name, data[:cut])

    def _flush_partials(self) -> None:
        for read, data in list(self._partial.items()):
            if data:
                self._queue(self._reads[read][1], data + b"\n")
        self._partial.clear()

    def _queue(self, name: str, data: bytes, force: bool = False) -> None:
        size = len(data)
        if not force and self.stored + size > self.budget:
            self.shed += size
            if self._marked:
                return
            self._marked = True  # one marker where the shedding starts; the total comes at the end of the run
            data = f"[ml-dash: console output past {self.budget} bytes is not stored from here on]\n".encode()
            name, size, force = "stderr", len(data), True
        queue = PIPELINE.queue
        if not force and len(queue) >= PIPELINE.capacity:
            self.shed += size  # a full queue would make this thread wait, and the program's writes behind it
            return
        record = {"timestamp": _time(), "stream": name, "text": data.decode("utf-8", "replace")}
        queue.append(record_event(self.store_key, "console", record, False))
        self.stored += size
        self.lines += data.count(b"\n")
        if len(queue) >= PIPELINE.threshold and len(queue) <= PIPELINE.capacity:
            PIPELINE.slow_path()  # starts or wakes the writer; with room in the queue it never blocks


def _flush(stream: object) -> None:
    try:
        stream.flush()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001  (a closed or replaced sys.stdout must not stop a run)
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except OSError:
            return  # the terminal went away: the capture goes on storing


def start_console(store_key: int, on: bool, budget: int) -> ConsoleCapture | None:
    """A started capture for a run with the console on, else None (also when fds 1 and 2 cannot be redirected)."""
    if not on or os.name != "posix":  # select() on pipes and fd inheritance as used here are POSIX's
        return None
    capture = ConsoleCapture(store_key, budget)
    try:
        capture.start()
    except OSError:
        return None
    return capture
