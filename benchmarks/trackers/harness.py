"""The child-process side of ``compare_trackers.py``: one tracker, one fresh process.

``worker()`` (``compare_trackers.py --worker NAME``) times every step's logging call on the caller thread, then the
finish, and samples the CPU and RSS of the process tree; its numbers go to ``OUT/result.json``. ``readback()``
(``--readback NAME``) runs in yet another fresh process after the worker exited and counts the steps the store holds.
What is tracker-specific is the adapter's (``trackers/<tracker>.py``); what is measured, and how, is here.
"""
from __future__ import annotations

import json
import os
import resource
import threading
import time

from . import TRACKERS


def _tracker(name: str):
    try:
        return TRACKERS[name]
    except KeyError:
        raise SystemExit(f"unknown tracker {name!r}") from None


class _ChildSampler:
    """Polls this process's descendants (psutil, if present) for CPU time and RSS: a tracker's service process
    (W&B's) may exit or be orphaned without this process waiting for it, so RUSAGE_CHILDREN alone can miss it."""

    def __init__(self, interval: float = 0.02) -> None:
        try:
            import psutil
        except ImportError:
            self.psutil = None
            return
        self.psutil = psutil
        self.me = psutil.Process()
        self.cpu: dict[int, float] = {}
        self.rss: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.poll()
        self.t = threading.Thread(target=self._run, name="bench-child-sampler", daemon=True)
        self.t.start()

    def poll(self) -> None:
        if self.psutil is None:
            return
        try:
            kids = self.me.children(recursive=True)
        except self.psutil.Error:
            return
        for k in kids:
            try:
                with k.oneshot():
                    c = k.cpu_times()
                    cpu = c.user + c.system
                    rss = k.memory_info().rss
                    name = k.name()
            except self.psutil.Error:
                continue
            with self._lock:
                self.cpu[k.pid] = max(self.cpu.get(k.pid, 0.0), cpu)
                self.rss[k.pid] = max(self.rss.get(k.pid, 0), rss)
                self.names[k.pid] = name

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.poll()

    def snapshot(self) -> dict[int, float]:
        if self.psutil is None:
            return {}
        self.poll()
        with self._lock:
            return dict(self.cpu)

    def stop(self) -> None:
        if self.psutil is not None:
            self._stop.set()
            self.poll()


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _values(i: int, n: int, tensor: bool, torch=None, w=None) -> dict:
    if not tensor:
        return {"loss": 1.0 / (i + 1), "acc": i / n, "lr": 1e-3 * (1.0 - i / n)}
    # a loss as a training loop has it: a 0-d tensor that requires grad, plus two plain-tensor metrics
    loss = (w * (1.0 / (i + 1))).sum()
    return {"loss": loss, "acc": torch.tensor(i / n), "lr": torch.tensor(1e-3)}


class _SyncCounter:
    """Wraps the torch.Tensor methods that pull a value to the host and counts their calls per thread."""

    METHODS = ("item", "cpu", "numpy", "tolist", "__float__", "__int__", "__array__")

    def __init__(self, torch) -> None:
        self.caller = threading.get_ident()
        self.on = False
        self.caller_calls: dict[str, int] = {}
        self.other_calls: dict[str, int] = {}
        T = torch.Tensor
        # Every tensor claims not to live on the CPU, so a tracker that reads CPU tensors inline (ml-dash does:
        # there is no device to wait for) takes the path it takes on a GPU; one that never asks still calls what
        # it always calls. On this CPU-only pass, the counts are then the ones a GPU run would see.
        T.is_cpu = property(lambda self: False)
        for m in self.METHODS:
            orig = getattr(T, m, None)
            if orig is None:
                continue
            setattr(T, m, self._wrap(m, orig))

    def _wrap(self, m, orig):
        counter = self

        def wrapper(*a, **k):
            if counter.on:
                d = counter.caller_calls if threading.get_ident() == counter.caller else counter.other_calls
                d[m] = d.get(m, 0) + 1
            return orig(*a, **k)

        wrapper.__name__ = m
        return wrapper



def worker(args) -> None:
    name, n, out = args.worker, args.steps, args.out
    t = _tracker(name)
    os.makedirs(out, exist_ok=True)
    res: dict = {"tracker": name, "mode": args.mode}
    meta: dict = {}
    t.prepare(out, meta)  # environment, a helper server: before the sampler starts, outside the setup time

    torch = w = counter = None
    tensor = args.mode == "sync"
    if tensor or t.needs_torch:
        import torch  # noqa: F811  (TB needs it anyway; the sync pass needs it for the tensors)
    if tensor:
        w = torch.ones(4, requires_grad=True)
        counter = _SyncCounter(torch)

    sampler = _ChildSampler()
    t_setup = time.perf_counter()
    log, finish = t.setup(out, meta)
    res["setup_s"] = time.perf_counter() - t_setup

    cpu0, cpuc0, kids0 = _cpu_self(), _cpu_children(), sampler.snapshot()
    durs = [0] * n
    pc = time.perf_counter_ns
    cap_ns = int(args.max_loop_s * 1e9)
    if counter:
        counter.on = True
    t_loop = pc()
    done = n
    for i in range(n):
        d = _values(i, n, tensor, torch, w)
        t0 = pc()
        log(i, d)
        durs[i] = pc() - t0
        if (i & 1023) == 1023 and pc() - t_loop > cap_ns:
            done = i + 1
            break
    loop_ns = pc() - t_loop
    if counter:
        counter.on = False
        res["caller_syncs"] = dict(counter.caller_calls)
        counter.caller_calls = {}
        counter.on = True
    t_fin = pc()
    finish()
    fin_ns = pc() - t_fin
    if counter:
        counter.on = False
        res["caller_syncs_finish"] = dict(counter.caller_calls)
        res["other_thread_syncs"] = dict(counter.other_calls)
    cpu1, cpuc1 = _cpu_self(), _cpu_children()
    kids1 = sampler.snapshot()
    sampler.stop()
    t.cleanup(meta)

    durs = sorted(durs[:done])
    res.update(
        steps=done, capped=done < n, loop_s=loop_ns / 1e9, finish_s=fin_ns / 1e9,
        median_us=durs[len(durs) // 2] / 1e3, p99_us=durs[min(len(durs) - 1, int(len(durs) * 0.99))] / 1e3,
        mean_us=sum(durs) / len(durs) / 1e3, max_us=durs[-1] / 1e3,
    )
    kid_delta = sum(kids1.get(p, 0.0) - kids0.get(p, 0.0) for p in kids1)
    res["cpu_self_s"] = cpu1 - cpu0
    res["cpu_children_s"] = max(cpuc1 - cpuc0, kid_delta)
    res["cpu_loop_finish_s"] = res["cpu_self_s"] + res["cpu_children_s"]
    res["rss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kid_rss = dict(sampler.rss) if sampler.psutil else {}
    res["rss_children_mib"] = (sum(kid_rss.values()) / 2**20 if sampler.psutil
                               else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    res["child_processes"] = sorted(set(sampler.names.values())) if sampler.psutil else None
    if t.in_memory:
        res["stored_in_memory"] = t.stored_in_memory()
    res["meta"] = meta
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(res, f)


# ----------------------------------------------------------------------------------------------------------------
# Readback: in yet another fresh process, after the worker exited, count the steps the store holds.
# ----------------------------------------------------------------------------------------------------------------

def readback(name: str, out: str) -> dict:
    t = _tracker(name)
    with open(os.path.join(out, "result.json")) as f:
        meta = json.load(f)["meta"]
    return t.readback(out, meta)
