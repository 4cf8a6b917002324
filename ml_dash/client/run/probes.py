"""What one system-metrics sample reads: psutil for the process and the host, NVML (``pynvml``) for each GPU.

Every reading is optional: a probe that is missing (no psutil, no NVML library, no GPU, a counter the platform does
not have) leaves its names out of the row instead of failing the sample. The names are documented in
docs/system-metrics.md; the server stores them under ``format.layout.SYSTEM_PREFIX``.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

logger = logging.getLogger("ml_dash")

_MB = 1024.0 * 1024.0
_NO_GPU: list[str] = []  # why NVML is unusable in this process, once known: later runs neither retry nor log it


def _rate(now: float, before: float | None, seconds: float) -> float | None:
    """Bytes counted between two readings as MB/s; None for the first reading or a counter that went backwards."""
    if before is None or seconds <= 0 or now < before:
        return None
    return (now - before) / _MB / seconds


class HostProbe:
    """psutil readings. CPU percentages and I/O rates cover the time since the previous reading of them; a ``read()``
    less than ``min_period`` seconds after it (the sample at a run's start, or the one at its end right after an
    interval's) leaves them out rather than report the noise of a few milliseconds (0 % or 100 %)."""

    def __init__(self, min_period: float = 0.0) -> None:
        self.min_period = min_period
        try:
            import psutil
        except ImportError:  # a dependency, but a broken install must cost the run nothing: no host metrics
            logger.debug("ml-dash: psutil is not importable; system metrics have no CPU, memory, disk or network")
            self._psutil = None
            return
        self._psutil = psutil
        self._process = psutil.Process()
        self._last_time = time.monotonic()
        self._last = self._counters()  # primes the I/O rates, and cpu_percent(None) below the CPU ones
        self._psutil.cpu_percent(None)
        self._process.cpu_percent(None)

    def _counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, read in (("disk", self._psutil.disk_io_counters), ("net", self._psutil.net_io_counters)):
            try:
                counters = read()
            except (OSError, RuntimeError):  # containers without /proc/diskstats and the like
                counters = None
            if counters is None:
                continue
            if name == "disk":
                out["disk_read_mb_s"], out["disk_write_mb_s"] = counters.read_bytes, counters.write_bytes
            else:
                out["net_recv_mb_s"], out["net_sent_mb_s"] = counters.bytes_recv, counters.bytes_sent
        return out

    def read(self, row: dict[str, float]) -> None:
        if self._psutil is None:
            return
        psutil, process = self._psutil, self._process
        now = time.monotonic()
        seconds = now - self._last_time
        if seconds >= self.min_period:
            _put(row, "cpu_percent", lambda: psutil.cpu_percent(None))
            _put(row, "process_cpu_percent", lambda: process.cpu_percent(None))
        _put(row, "process_rss_mb", lambda: process.memory_info().rss / _MB)
        _put(row, "process_threads", lambda: process.num_threads())
        memory = _call(psutil.virtual_memory)
        if memory is not None:
            row["memory_percent"] = float(memory.percent)
            row["memory_used_mb"] = (memory.total - memory.available) / _MB
            row["memory_available_mb"] = memory.available / _MB
        if seconds < self.min_period:
            return
        self._last_time = now
        counters = self._counters()
        for name, value in counters.items():
            rate = _rate(value, self._last.get(name), seconds)
            if rate is not None:
                row[name] = rate
        self._last = counters


class GpuProbe:
    """NVML readings per GPU (``gpu.<index>.<name>``); inactive, after one DEBUG line, without the library or a GPU."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list = []
        if _NO_GPU:
            return
        try:
            import pynvml
        except ImportError:
            return self._unusable("nvidia-ml-py (pynvml) is not installed")
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ... : no usable GPU here
            return self._unusable(f"NVML: {exc}")
        if not self._handles:
            return self._unusable("NVML finds no GPU")
        self._nvml = pynvml
        # Per (GPU, reading): a call that failed once (a GPU without a power sensor) is not tried again, so a missing
        # sensor costs neither a warning per sample nor the time of a failing call.
        self._broken: set[tuple[int, str]] = set()

    @staticmethod
    def _unusable(why: str) -> None:
        _NO_GPU.append(why)
        logger.debug("ml-dash: system metrics have no GPU readings (%s)", why)

    @property
    def active(self) -> bool:
        return self._nvml is not None

    def read(self, row: dict[str, float]) -> None:
        nvml = self._nvml
        if nvml is None:
            return
        for index, handle in enumerate(self._handles):
            self._reading(row, index, "utilization_percent", lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            memory = self._reading(None, index, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            if memory is not None and memory.total:
                row[f"gpu.{index}.memory_used_mb"] = memory.used / _MB
                row[f"gpu.{index}.memory_percent"] = 100.0 * memory.used / memory.total
            self._reading(row, index, "temperature_c",
                          lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            self._reading(row, index, "power_w", lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)

    def _reading(self, row: dict | None, index: int, name: str, read: Any) -> Any:
        if (index, name) in self._broken:
            return None
        try:
            value = read()
        except Exception as exc:  # NVMLError_NotSupported and friends: this GPU has no such reading
            self._broken.add((index, name))
            logger.debug("ml-dash: GPU %d has no %s reading (NVML: %s)", index, name, exc)
            return None
        if row is not None:
            _store(row, f"gpu.{index}.{name}", value)
        return value

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001  (shutting down a library we only read from)
                pass
            self._nvml = None


def _call(read: Any) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001  (psutil.Error, OSError: one missing reading never costs the sample)
        return None


def _put(row: dict[str, float], name: str, read: Any) -> None:
    _store(row, name, _call(read))


def _store(row: dict[str, float], name: str, value: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    value = float(value)
    if math.isfinite(value):
        row[name] = value
