"""Runs whose process died without ``complete()`` or ``fail()`` (SIGKILL, OOM killer, power loss).

Their meta file still says ``running``. ``ml-dash sync`` marks such a run FAILED (after its data) only when the meta
proves the process gone: it ran on this host and its pid is no longer alive (or is alive but a newer process reused
the pid). Anything it cannot prove is left RUNNING, with a note saying why.
"""
from __future__ import annotations

import os
import socket
import sys

from ml_dash.format.layout import STREAMS, meta_path, rank_meta_path, read_meta, stream_path, write_meta

_START_SLACK = 2.0  # seconds: /proc start times are boot time (whole seconds) plus clock ticks


def _proc_stat(pid: int) -> tuple[str, float] | None:
    """(state, start time as epoch seconds) of ``pid`` from /proc on Linux, or ``None`` if that cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        fields = stat[stat.rindex(b")") + 2:].split()  # the command name in (…) may hold spaces
        return fields[0].decode(), btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # fields 3 and 22 of stat
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_gone(pid: int, started_at: float | None) -> bool:
    """``True`` only if ``pid`` on this host provably no longer runs the process that started the run at
    ``started_at``: no such process, a zombie, or a process that started after the run did (the pid was reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False  # someone else's live process (or an odd pid): not provably gone
    stat = _proc_stat(pid)
    if stat is None:
        return False
    state, start = stat
    return state == "Z" or (started_at is not None and start > started_at + _START_SLACK)


def crash_check(meta: dict) -> tuple[bool, str]:
    """Whether the run a ``running`` meta describes provably crashed, and a few words saying why (or why not)."""
    pid, host = meta.get("pid"), meta.get("hostname")
    if not isinstance(pid, int) or pid <= 0 or not host:
        return False, "its meta file records no host and pid to check"
    if host != socket.gethostname():
        return False, f"it runs on {host}, not on this host: cannot check process {pid}"
    if not process_gone(pid, meta.get("started_at")):
        return False, f"process {pid} on {host} is still alive"
    return True, f"process {pid} on {host} is gone"


def crash_error(meta: dict, by: str = "ml-dash sync") -> str:
    return (f"process {meta.get('pid')} on {meta.get('hostname')} ended without complete() or fail() (killed?); "
            f"marked failed by {by}")


def crash_verdict(directory: str, meta: dict, by: str) -> tuple[tuple[str, float] | None, str]:
    """``((error, ended_at), why)`` when the run ``meta`` describes provably crashed (its end time estimated from its
    last write), else ``(None, why)``."""
    gone, why = crash_check(meta)
    if not gone:
        return None, why
    return (crash_error(meta, by), last_write(directory, meta)), why


def previous_run_crashed(directory: str, meta: dict) -> tuple[float, str, float] | None:
    """When a new run starts where the meta still says ``running``: (its started_at, error, ended_at) if that run's
    process is provably gone, else ``None`` (our own process, another live one, or another host: not ours to end)."""
    if meta.get("status") != "running" or meta.get("pid") == os.getpid():
        return None
    ended, _why = crash_verdict(directory, meta, "the next run in this directory")
    return None if ended is None else (meta.get("started_at"), *ended)


def _rank(meta: dict) -> int:
    rank = meta.get("rank")
    return rank if type(rank) is int and rank > 0 else 0


def last_write(directory: str, meta: dict) -> float:
    """When the run last wrote its streams or meta: the best guess at when its process died. A rank of a distributed
    job (its meta says which) writes files of its own (``metrics.rank-3.jsonl``)."""
    times = [float(meta.get("started_at") or 0.0)]
    rank = _rank(meta)
    for path in [stream_path(directory, stream, rank) for stream in STREAMS] + \
            [rank_meta_path(directory, rank) if rank else meta_path(directory)]:
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            pass
    return max(times)


def mark_meta_failed(directory: str, meta: dict, error: str, ended_at: float) -> bool:
    """Rewrite the meta file (atomically, as ``Experiment`` does) with status ``failed``; ``False`` if it no longer
    describes the same running run (a new run started in this directory meanwhile) or cannot be written."""
    rank = _rank(meta)
    now = read_meta(directory, rank=rank)  # a rank's own status file: ranks never overwrite each other's
    if now.get("status") != "running" or any(
            now.get(k) != meta.get(k) for k in ("started_at", "pid", "hostname")):
        return False
    now.update(status="failed", completed_at=ended_at, error=error)
    try:
        write_meta(directory, now, rank)
    except OSError:
        return False
    meta.update(now)
    return True
