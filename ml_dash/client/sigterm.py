"""SIGTERM (docker stop, SLURM, Kubernetes) handled like an exception at exit: runs still open end failed, with what
they logged drained and uploaded within the exit bounds; then the process dies of SIGTERM as it would have."""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from ml_dash.client.pipeline.process import PIPELINE

logger = logging.getLogger("ml_dash")

terminated_by: str | None = None  # set by the handler: runs still open at that point end failed with it
_pid: int | None = None  # the process that installed the handler (a forked child inherits it)


def handle_sigterm() -> None:
    """When a run starts: install the handler, unless the program has one of its own. Only the main thread can."""
    global _pid
    if _pid == os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or not the main interpreter
        return
    _pid = os.getpid()


def _on_sigterm(signum: int, frame: Any) -> None:
    """Drain the queue, mark open runs failed ("terminated by SIGTERM") and upload them, all within the exit bounds
    (ML_DASH_EXIT_TIMEOUT, ML_DASH_UPLOAD_TIMEOUT); then die of SIGTERM as without the handler (exit status 143)."""
    global terminated_by
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    if os.getpid() == _pid:  # a forked child that inherited the handler: the default action, as before
        terminated_by = "terminated by SIGTERM"
        try:
            PIPELINE.exit_drain()
        except BaseException:  # noqa: BLE001  (dying anyway: never let finalising keep the process alive)
            logger.exception("ml-dash: finalising at SIGTERM failed")
    os.kill(os.getpid(), signal.SIGTERM)
