"""Start a run's helper threads (the system sampler, the environment capture) without making ``run()`` wait.

``Thread.start()`` returns only once the new thread is running, which on a loaded machine is however long the OS takes
to schedule it (tens of milliseconds were measured on two busy cores). So ``run()`` hands the thread to one daemon
thread per process, which starts it; ``run()`` pays a queue ``put``. The first use in a process (and in a forked
child, where the parent's starter does not exist) starts the starter itself.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

_lock = threading.Lock()
_jobs: Any = None  # a queue.SimpleQueue, made on first use (`import ml_dash` does not pay for the queue module)
_pid: int | None = None


def _main(jobs: Any) -> None:
    while True:
        job = jobs.get()
        try:
            job()
        except Exception:  # noqa: BLE001  (a job that cannot start a thread must not stop the others)
            import logging

            logging.getLogger("ml_dash").debug("ml-dash: a helper thread could not start", exc_info=True)


def start_soon(job: Callable[[], None]) -> None:
    """Run ``job`` (which starts a thread) on this process's starter thread, soon; returns at once."""
    global _jobs, _pid
    if _pid != os.getpid():
        with _lock:
            if _pid != os.getpid():
                import queue

                _jobs = queue.SimpleQueue()
                threading.Thread(target=_main, args=(_jobs,), name="ml-dash-starter", daemon=True).start()
                _pid = os.getpid()
    _jobs.put(job)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)
