"""System metrics: one sampler thread per run, writing rows to ``system.jsonl`` through the pipeline.

Every ``ML_DASH_SYSTEM_INTERVAL`` seconds (default 10) the thread reads the probes in ``_system_probes`` and queues one
row shaped like a metrics row with ``step`` null. It never writes a file itself (the writer does, like any event), so
the training thread pays nothing but the GIL time of a few psutil/NVML calls per interval. One row is taken as soon as
the thread has its probes, one per interval, and one when the run ends, so even a run shorter than an interval has a
first and a last sample. CPU percentages and I/O rates need a period to cover: a row closer than half an interval
(at most 1 s) to the previous reading of them (the first row, often the last) leaves them out.
"""
from __future__ import annotations

import logging
import threading
from time import time as _time

from ml_dash.client.events import record_event
from ml_dash.settings import SYSTEM_INTERVAL, SYSTEM_METRICS
from ml_dash.client.run.starter import start_soon
from ml_dash.client.pipeline.process import PIPELINE

logger = logging.getLogger("ml_dash")

STOP_TIMEOUT = 2.0  # how long complete()/fail() wait for a sample in progress (an NVML call) before going on


def system_settings(system_metrics: bool | None) -> tuple[bool, float]:
    """(on, interval): the ``system_metrics`` argument, else ML_DASH_SYSTEM_METRICS; ML_DASH_SYSTEM_INTERVAL."""
    if system_metrics is not None and not isinstance(system_metrics, bool):
        raise TypeError(f"Experiment: system_metrics must be True or False, got {type(system_metrics).__name__} "
                        f"{system_metrics!r}")
    on = SYSTEM_METRICS.get(system_metrics)
    return on, SYSTEM_INTERVAL.get() if on else SYSTEM_INTERVAL.default


class SystemSampler:
    """The sampler of one run. ``stop()`` wakes it at once (an ``Event`` wait, not a sleep) and joins it."""

    def __init__(self, store_key: int, interval: float) -> None:
        self.store_key = store_key
        self.interval = interval
        self.samples = 0  # rows queued so far (read by tests through ``wait_for``)
        self.gpu = False  # whether NVML found a GPU (known once the thread has set up its probes)
        self._stop = threading.Event()
        self._start_lock = threading.Lock()  # a stop() before the starter got to this sampler: it never starts
        self.running = threading.Event()  # set once the thread runs
        self._done = False
        self._late = False  # stop() gave up waiting: a row taken after that would land after the run's close
        self._queue_lock = threading.Lock()
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._main, name="ml-dash-system", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        start_soon(self._start_now)  # run() does not wait for the thread to be scheduled

    def _start_now(self) -> None:
        with self._start_lock:
            if not self._stop.is_set():
                self._thread.start()
                return
        self._finished()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        with self._start_lock:
            self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._queue_lock:
            self._late = True

    def wait_for(self, samples: int, timeout: float) -> bool:
        """Wait until at least ``samples`` rows were queued; ``False`` if ``timeout`` ran out (or it stopped)."""
        with self._progress:
            return self._progress.wait_for(lambda: self.samples >= samples or self._done,
                                           timeout) and self.samples >= samples

    def _main(self) -> None:
        self.running.set()
        try:
            from ml_dash.client.run.probes import GpuProbe, HostProbe

            # A reading closer than half an interval (at most 1 s) to the previous one has no CPU % nor I/O rates.
            host, gpu = HostProbe(min(self.interval / 2, 1.0)), GpuProbe()  # here, not in run(): NVML's set-up can take a while
        except Exception:  # noqa: BLE001  (a sampler that cannot start must cost the run nothing)
            logger.debug("ml-dash: the system-metrics sampler could not start", exc_info=True)
            self._finished()
            return
        self.gpu = gpu.active
        try:
            self._sample(host, gpu)  # at the start: a run shorter than one interval still shows where it began
            while not self._stop.wait(self.interval):
                self._sample(host, gpu)
            self._sample(host, gpu)  # at the end: stop() waits for it, so it is flushed with the run's last rows
        finally:
            gpu.close()
            self._finished()

    def _sample(self, host, gpu) -> None:
        row: dict[str, float] = {}
        try:
            host.read(row)
            gpu.read(row)
        except Exception:  # noqa: BLE001  (one failed reading never ends the sampling)
            logger.debug("ml-dash: a system-metrics sample failed", exc_info=True)
        if row:
            self._queue(row)

    def _queue(self, row: dict[str, float]) -> None:
        record = {"timestamp": _time(), "step": None, "metrics": row}
        with self._queue_lock:
            if self._late:
                return
            PIPELINE.queue.append(record_event(self.store_key, "system", record, False))
        if len(PIPELINE.queue) >= PIPELINE.threshold:
            PIPELINE.slow_path()
        with self._progress:
            self.samples += 1
            self._progress.notify_all()

    def _finished(self) -> None:
        with self._progress:
            self._done = True
            self._progress.notify_all()


def start_sampler(store_key: int, on: bool, interval: float) -> SystemSampler | None:
    """A started sampler for a run that has system metrics on, else None."""
    if not on:
        return None
    sampler = SystemSampler(store_key, interval)
    sampler.start()
    return sampler
