"""The default writer: one daemon thread that takes a turn when woken, or every ``interval`` seconds."""
from __future__ import annotations

import threading

from ml_dash.client.pipeline.pace import pace_this_thread
from ml_dash.client.pipeline.writer import WriterHost


class ThreadWriter:
    def __init__(self, host: WriterHost) -> None:
        self._host = host
        self._event = threading.Event()
        self.owner = threading.Thread(target=self._run, name="ml-dash-writer", daemon=True)
        self.owner.start()

    def wake(self) -> None:
        self._event.set()

    def is_alive(self) -> bool:
        return self.owner.is_alive()

    def _run(self) -> None:
        host, event = self._host, self._event
        while True:
            event.wait(host.interval)
            event.clear()
            pace_this_thread()  # this thread's work is paced (pipeline.pace): a slice starts with each turn
            try:
                host.writer_turn()
            except BaseException as exc:  # never let the writer die: the caller would block forever
                host.set_error(exc)
