#!/usr/bin/env python3
"""Head-to-head: what logging N steps of 3 scalars costs the training loop with ml-dash and the trackers users
would pick instead (W&B offline, MLflow, TensorBoard, Aim), plus two floors (``deque.append`` and orjson + a
buffered write on the caller).

Every tracker runs in a fresh subprocess (``--worker NAME``); the trackers are interleaved across repetitions
(the order is rotated each rep). For each one we record, on the caller thread, the time of every step's logging
call (``perf_counter_ns``), then the loop's wall time, the time to finish/close, the CPU of the whole process
tree (a tracker's service processes included), bytes on disk, peak RSS, and — in another fresh process after the
worker exited — how many steps can be read back from the store. A second, short pass logs a torch tensor
(a ``requires_grad`` loss) instead of floats and counts, on the caller thread, the calls that would synchronise
a GPU (``Tensor.item/.cpu/.numpy/.tolist`` and ``float()``/``__array__``).

Run it with a Python that has the peers installed (see benchmarks/README.md); missing peers are skipped and
reported as skipped::

    .venv-peers/bin/python benchmarks/compare_trackers.py --steps 20000 --reps 3
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
KEYS = ("loss", "acc", "lr")

# name -> (label, module the worker needs, what it calls per step)
TRACKERS = {
    "mldash": ("ml-dash (local)", "ml_dash", "exp.metrics.log(step=i, **d)"),
    "mldash_remote": ("ml-dash (remote, local server)", "ml_dash.server.testing", "exp.metrics.log(step=i, **d), remote=URL"),
    "wandb": ("W&B offline", "wandb", "wandb.log(d, step=i)"),
    "mlflow": ("MLflow (sqlite, sync)", "mlflow", "mlflow.log_metrics(d, step=i)"),
    "mlflow_async": ("MLflow (sqlite, synchronous=False)", "mlflow", "mlflow.log_metrics(d, step=i, synchronous=False)"),
    "tensorboard": ("TensorBoard (torch SummaryWriter)", "tensorboard", "3 x writer.add_scalar(k, v, i)"),
    "aim": ("Aim", "aim", "run.track(d, step=i)"),
    "deque": ("baseline: deque.append(dict)", None, "q.append({'step': i, **d})"),
    "orjson": ("baseline: orjson + buffered write", "orjson", "f.write(orjson.dumps({'step': i, **d}) + b'\\n')"),
}
ORDER = list(TRACKERS)
DIST = {"ml_dash": "ml-dash", "ml_dash.server.testing": "ml-dash", "wandb": "wandb", "mlflow": "mlflow",
        "tensorboard": "tensorboard", "aim": "aim", "orjson": "orjson"}


# ----------------------------------------------------------------------------------------------------------------
# Worker side: one tracker, one fresh process.
# ----------------------------------------------------------------------------------------------------------------

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


def _setup(name: str, out: str, meta: dict):
    """Returns (log(i, d), finish()) for one tracker, writing into ``out``."""
    if name in ("mldash", "mldash_remote"):
        from ml_dash import Experiment

        kw = {}
        if name == "mldash_remote":
            kw["remote"] = meta["remote_url"]
        exp = Experiment(namespace="bench", workspace="compare", prefix="run", local_root=os.path.join(out, "ml-dash"), **kw)
        exp.run()
        log = exp.metrics.log
        meta["local_path"] = exp.local_path
        return (lambda i, d: log(step=i, **d)), exp.complete

    if name == "wandb":
        import wandb

        run = wandb.init(mode="offline", dir=out, project="bench", name="run")
        meta["run_dir"] = run.dir
        return (lambda i, d: run.log(d, step=i)), run.finish

    if name in ("mlflow", "mlflow_async"):
        import mlflow

        mlflow.set_tracking_uri("sqlite:///" + os.path.join(out, "mlflow.db"))
        exp_id = mlflow.create_experiment("bench", artifact_location="file://" + os.path.join(out, "artifacts"))
        run = mlflow.start_run(experiment_id=exp_id)
        meta["run_id"] = run.info.run_id
        meta["tracking_uri"] = mlflow.get_tracking_uri()
        log_metrics = mlflow.log_metrics
        if name == "mlflow":
            return (lambda i, d: log_metrics(d, step=i)), mlflow.end_run

        def finish():
            mlflow.flush_async_logging()
            mlflow.end_run()

        return (lambda i, d: log_metrics(d, step=i, synchronous=False)), finish

    if name == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        w = SummaryWriter(log_dir=os.path.join(out, "tb"))
        add = w.add_scalar

        def log(i, d):
            for k, v in d.items():
                add(k, v, i)

        return log, w.close

    if name == "aim":
        from aim import Run

        run = Run(repo=out, experiment="bench")
        meta["run_hash"] = run.hash
        track = run.track
        return (lambda i, d: track(d, step=i)), run.close

    if name == "deque":
        q: deque = deque()
        meta["_deque"] = q
        append = q.append
        return (lambda i, d: append({"step": i, **d})), (lambda: None)

    if name == "orjson":
        import orjson

        path = os.path.join(out, "metrics.jsonl")
        f = open(path, "wb", buffering=1 << 16)
        dumps, write = orjson.dumps, f.write
        opt = orjson.OPT_SERIALIZE_NUMPY

        def default(v):  # a tensor: orjson cannot encode one, so the caller must pull the number out
            return v.item()

        def log(i, d):
            write(dumps({"step": i, **d}, default=default, option=opt) + b"\n")

        return log, f.close

    raise SystemExit(f"unknown tracker {name!r}")


class _SyncCounter:
    """Wraps the torch.Tensor methods that pull a value to the host and counts their calls per thread."""

    METHODS = ("item", "cpu", "numpy", "tolist", "__float__", "__int__", "__array__")

    def __init__(self, torch) -> None:
        self.caller = threading.get_ident()
        self.on = False
        self.caller_calls: dict[str, int] = {}
        self.other_calls: dict[str, int] = {}
        T = torch.Tensor
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
    os.makedirs(out, exist_ok=True)
    res: dict = {"tracker": name, "mode": args.mode}
    meta: dict = {}
    if name == "wandb":
        for k, v in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": out,
                     "WANDB_CACHE_DIR": os.path.join(out, ".cache"), "WANDB_CONFIG_DIR": os.path.join(out, ".config"),
                     "WANDB_DATA_DIR": os.path.join(out, ".data"), "WANDB_DISABLE_GIT": "true"}.items():
            os.environ[k] = v
    server_cm = None
    if name == "mldash_remote":
        from ml_dash.server.testing import running_server

        server_cm = running_server(os.path.join(out, "server-data")) if _takes_arg(running_server) else running_server()
        srv = server_cm.__enter__()
        meta["remote_url"] = srv if isinstance(srv, str) else getattr(srv, "url", None) or str(srv)

    torch = w = counter = None
    tensor = args.mode == "sync"
    if tensor or name == "tensorboard":
        import torch  # noqa: F811  (TB needs it anyway; the sync pass needs it for the tensors)
    if tensor:
        w = torch.ones(4, requires_grad=True)
        counter = _SyncCounter(torch)

    sampler = _ChildSampler()
    t_setup = time.perf_counter()
    log, finish = _setup(name, out, meta)
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
    if server_cm is not None:
        try:
            meta["server_steps"] = _server_steps(meta["remote_url"])
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            meta["server_steps"] = f"unchecked: {type(e).__name__}: {e}"
        server_cm.__exit__(None, None, None)

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
    if name == "deque":
        q = meta.pop("_deque")
        res["stored_in_memory"] = sum(1 for r in q if all(k in r for k in KEYS))
    meta.pop("_deque", None)
    res["meta"] = meta
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(res, f)


def _server_steps(url: str) -> int:
    """Steps with all three metrics that the ml-dash server holds for bench/compare/run (its REST API)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    def get(path):
        with urllib.request.urlopen(url + "/api/v1" + path, timeout=30) as r:
            return json.loads(r.read())

    exps = [e for e in get("/experiments?namespace=bench")["experiments"] if e.get("prefix") == "run"]
    if len(exps) != 1:
        raise RuntimeError(f"{len(exps)} experiments on the server")
    eid = urllib.parse.quote(str(exps[0].get("id") or exps[0].get("experiment_id")))
    steps: dict[int, set] = {}
    for k in KEYS:
        try:
            series = get(f"/experiments/{eid}/metrics/{k}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                continue
            raise
        for st in series["steps"]:
            steps.setdefault(st, set()).add(k)
    return _complete_steps(steps)


def _takes_arg(fn) -> bool:
    import inspect

    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return False
    return bool(params)


# ----------------------------------------------------------------------------------------------------------------
# Readback: in yet another fresh process, after the worker exited, count the steps the store holds.
# ----------------------------------------------------------------------------------------------------------------

def _wandb_records(path: str):
    """Records of a W&B ``.wandb`` file: a 7-byte header (``:W&B``, magic 0xBEE1, version), then LevelDB-log
    framing: 32 KiB blocks of chunks with a 7-byte header (crc32, length, type FULL/FIRST/MIDDLE/LAST).
    (wandb 0.31 no longer ships a Python reader for it; the Go core writes it.)"""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    ident, magic, _version = struct.unpack_from("<4sHB", data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: not a .wandb file")
    block, pos, buf = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # trailer padding at the end of a block
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        pos += 7
        chunk = data[pos:pos + length]
        pos += length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk
            buf = b""
        elif kind == 0 and length == 0:
            continue
        else:
            raise ValueError(f"{path}: bad chunk type {kind} at {pos}")


def _complete_steps(step_keys: dict[int, set]) -> int:
    return sum(1 for ks in step_keys.values() if all(k in ks for k in KEYS))


def readback(name: str, out: str) -> dict:
    with open(os.path.join(out, "result.json")) as f:
        meta = json.load(f)["meta"]
    steps: dict[int, set] = {}
    how = ""
    if name in ("mldash", "mldash_remote"):
        from ml_dash import Experiment

        exp = Experiment(namespace="bench", workspace="compare", prefix="run", local_root=os.path.join(out, "ml-dash"))
        for row in exp.metrics.read():
            steps.setdefault(row.get("step"), set()).update((row.get("metrics") or {}).keys())
        how = "exp.metrics.read()"
        if name == "mldash_remote":
            local = _complete_steps(steps)
            srv = meta.get("server_steps")
            if not isinstance(srv, int):
                return {"stored": None, "how": f"local {local}; server {srv}"}
            return {"stored": min(local, srv), "how": f"exp.metrics.read() (local: {local}) and the server's "
                    f"REST API (server: {srv})"}
    elif name == "wandb":
        import glob

        from wandb.proto import wandb_internal_pb2

        files = glob.glob(os.path.join(out, "wandb", "offline-run-*", "*.wandb"))
        if len(files) != 1:
            return {"stored": None, "how": f"unchecked: found {len(files)} .wandb files"}
        for data in _wandb_records(files[0]):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(data)
            if rec.WhichOneof("record_type") == "history":
                h = rec.history
                st = h.step.num if h.HasField("step") else None
                keys = {it.key or "/".join(it.nested_key) for it in h.item}
                if st is None:
                    for it in h.item:
                        if (it.key or "") == "_step":
                            st = int(json.loads(it.value_json))
                steps.setdefault(st, set()).update(keys)
        how = "history records of the offline .wandb file (leveldb-log framing, wandb_internal_pb2.Record)"
    elif name in ("mlflow", "mlflow_async"):
        from mlflow.tracking import MlflowClient

        c = MlflowClient(tracking_uri=meta["tracking_uri"])
        for k in KEYS:
            for m in c.get_metric_history(meta["run_id"], k):
                steps.setdefault(m.step, set()).add(k)
        how = "MlflowClient.get_metric_history"
    elif name == "tensorboard":
        from tensorboard.backend.event_processing import event_accumulator

        ea = event_accumulator.EventAccumulator(os.path.join(out, "tb"), size_guidance={event_accumulator.SCALARS: 0})
        ea.Reload()
        for k in ea.Tags().get("scalars", []):
            for e in ea.Scalars(k):
                steps.setdefault(e.step, set()).add(k)
        how = "event_accumulator.EventAccumulator"
    elif name == "aim":
        from aim import Repo, Run
        from aim.sdk.index_manager import RepoIndexManager
        from aim.storage.context import Context

        # Aim 3.29 writes a run into its own chunk; the repo index is built by the indexing manager that `aim up`
        # runs. Index the run the same way, then read it.
        repo = Repo(out)
        RepoIndexManager(repo).index(meta["run_hash"])
        run = Run(run_hash=meta["run_hash"], repo=repo, read_only=True)
        for k in KEYS:
            seq = run.get_metric(k, Context({}))
            if seq is None:
                continue
            st, _cols = seq.data.numpy()
            for x in st.tolist():
                steps.setdefault(int(x), set()).add(k)
        how = "RepoIndexManager.index(run) (as `aim up` does), then Run.get_metric(k).data"
    elif name == "orjson":
        import orjson

        with open(os.path.join(out, "metrics.jsonl"), "rb") as f:
            for line in f:
                r = orjson.loads(line)
                steps.setdefault(r["step"], set()).update(r)
        how = "read the JSONL back"
    elif name == "deque":
        return {"stored": None, "how": "in memory (counted in the worker)"}
    return {"stored": _complete_steps(steps), "how": how}


# ----------------------------------------------------------------------------------------------------------------
# Orchestrator.
# ----------------------------------------------------------------------------------------------------------------

def _available(name: str) -> tuple[bool, str]:
    mod = TRACKERS[name][1]
    if mod is None:
        return True, ""
    import importlib.util

    try:
        if importlib.util.find_spec(mod) is None:
            return False, f"`{mod}` is not installed in {sys.executable}"
    except ModuleNotFoundError as e:
        return False, f"`{mod}` is not importable ({e})"
    if name == "tensorboard" and importlib.util.find_spec("torch") is None:
        return False, "torch is not installed"
    return True, ""


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _du(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if f == "result.json" and root == path:
                continue
            try:
                if not os.path.islink(p):
                    total += os.path.getsize(p)
            except OSError:
                pass
    return total


def _steps_for(name: str, args) -> int:
    if name in ("mlflow", "mlflow_async") and args.mlflow_steps:
        return min(args.steps, args.mlflow_steps)
    return args.steps


def _run_one(name: str, steps: int, out: str, mode: str, args) -> dict:
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--steps", str(steps), "--out", out,
           "--mode", mode, "--max-loop-s", str(args.max_loop_s)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONHASHSEED="0")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.worker_timeout, env=env, cwd=out)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0 or not os.path.exists(os.path.join(out, "result.json")):
        tail = (p.stderr or p.stdout or "").strip().splitlines()[-6:]
        return {"tracker": name, "error": f"worker exited {p.returncode}: " + " | ".join(tail)}
    with open(os.path.join(out, "result.json")) as f:
        res = json.load(f)
    res["process_wall_s"] = wall
    res["cpu_process_total_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res["disk_bytes"] = _du(out)
    if mode == "timing":
        t1 = time.perf_counter()
        rb = subprocess.run([sys.executable, os.path.abspath(__file__), "--readback", name, "--out", out],
                            capture_output=True, text=True, timeout=args.worker_timeout, cwd=out)
        res["readback_s"] = time.perf_counter() - t1
        try:
            res["readback"] = json.loads(rb.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            tail = (rb.stderr or "").strip().splitlines()[-3:]
            res["readback"] = {"stored": None, "how": "unchecked: readback failed: " + " | ".join(tail)}
        if name == "deque":
            res["readback"]["stored"] = res.get("stored_in_memory")
    return res


def _remote_ok() -> tuple[bool, str]:
    """Is the project's test server there and does it start? Checked in a fresh process."""
    code = ("import os,sys,tempfile,inspect\n"
            "from ml_dash.server.testing import running_server\n"
            "from ml_dash import Experiment\n"
            "d=tempfile.mkdtemp()\n"
            "params=[p for p in inspect.signature(running_server).parameters.values() if p.default is p.empty "
            "and p.kind in (p.POSITIONAL_ONLY,p.POSITIONAL_OR_KEYWORD)]\n"
            "cm=running_server(os.path.join(d,'srv')) if params else running_server()\n"
            "s=cm.__enter__(); url=s if isinstance(s,str) else getattr(s,'url',s)\n"
            "try:\n"
            " e=Experiment(namespace='probe',workspace='probe',prefix='probe',local_root=os.path.join(d,'l'),remote=url)\n"
            " e.run(); e.metrics.log(step=0,x=1.0); e.complete()\n"
            "finally:\n"
            " cm.__exit__(None,None,None)\n")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "ml_dash.server.testing.running_server did not start within 60 s"
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"a probe run with `remote=` to ml_dash.server.testing.running_server failed: {last}"
    return True, ""


def _fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 100:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    return str(v)


def _ratio(v, base):
    if v is None or not base:
        return "-"
    r = v / base
    return f"{r:.2g}×" if r < 10 else f"{r:,.0f}×"


def _machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _agg(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def orchestrate(args) -> int:
    names = [n.strip() for n in args.only.split(",")] if args.only else ORDER
    bad = [n for n in names if n not in TRACKERS]
    if bad:
        print(f"unknown tracker(s): {', '.join(bad)}; choose from {', '.join(ORDER)}", file=sys.stderr)
        return 2
    skipped: dict[str, str] = {}
    run: list[str] = []
    for n in names:
        ok, why = _available(n)
        if ok and n == "mldash_remote":
            ok, why = _remote_ok()
        if ok:
            run.append(n)
        else:
            skipped[n] = why
            print(f"skip {TRACKERS[n][0]}: {why}", flush=True)

    root = args.workdir or tempfile.mkdtemp(prefix="compare-trackers-")
    results: dict[str, list[dict]] = {n: [] for n in run}
    errors: dict[str, str] = {}
    t_all = time.perf_counter()
    load_start = os.getloadavg()
    for rep in range(args.reps):
        order = run[rep % len(run):] + run[:rep % len(run)] if run else []
        for n in order:
            out = os.path.join(root, f"rep{rep}", n)
            r = _run_one(n, _steps_for(n, args), out, "timing", args)
            if "error" in r:
                errors[n] = r["error"]
                print(f"rep {rep} {n:14s} ERROR {r['error']}", flush=True)
            else:
                results[n].append(r)
                st = r["readback"].get("stored")
                print(f"rep {rep} {n:14s} median {r['median_us']:9.2f} µs  p99 {r['p99_us']:9.2f} µs  loop {r['loop_s']:7.2f} s"
                      f"  finish {r['finish_s']:6.2f} s  cpu {r['cpu_loop_finish_s']:6.2f} s  stored {st}/{r['steps']}", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
    sync: dict[str, dict] = {}
    if args.sync_steps > 0:
        for n in run:
            out = os.path.join(root, "sync", n)
            r = _run_one(n, args.sync_steps, out, "sync", args)
            sync[n] = r
            if "error" in r:
                print(f"sync {n:14s} ERROR {r['error']}", flush=True)
            else:
                print(f"sync {n:14s} caller-thread calls in the loop {r.get('caller_syncs')}, in finish "
                      f"{r.get('caller_syncs_finish')}, other threads {r.get('other_thread_syncs')}", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
    if not args.keep and not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    total_s = time.perf_counter() - t_all
    args.load = (load_start, os.getloadavg())  # other work on the machine skews p99 and wall times

    # ---- aggregate: the median over reps of each per-rep number
    rows = []
    for n in run:
        rs = results[n]
        if not rs:
            continue
        logged = sum(r["steps"] for r in rs)
        stored_list = [r["readback"].get("stored") for r in rs]
        if any(s is None for s in stored_list):
            check = "unchecked" if n != "deque" else "n/a"
            how = rs[0]["readback"].get("how", "")
        else:
            stored = sum(stored_list)
            check = "all" if stored == logged else f"{logged - stored} missing"
            how = rs[0]["readback"].get("how", "")
        s = sync.get(n, {})
        if "error" in s:
            sync_txt = "error: " + s["error"][-80:]
        elif s:
            calls = sum(s.get("caller_syncs", {}).values())
            fin = sum(s.get("caller_syncs_finish", {}).values())
            sync_txt = f"{calls / s['steps']:.3g}" + (f" (+{fin} at finish)" if fin else "")
        else:
            sync_txt = "-"
        rows.append(dict(
            name=n, label=TRACKERS[n][0], call=TRACKERS[n][2], reps=len(rs), steps=rs[0]["steps"],
            capped=any(r.get("capped") for r in rs),
            median_us=_agg([r["median_us"] for r in rs]), p99_us=_agg([r["p99_us"] for r in rs]),
            mean_us=_agg([r["mean_us"] for r in rs]),
            loop_s=_agg([r["loop_s"] for r in rs]), finish_s=_agg([r["finish_s"] for r in rs]),
            setup_s=_agg([r["setup_s"] for r in rs]),
            cpu_s=_agg([r["cpu_loop_finish_s"] for r in rs]), cpu_total_s=_agg([r["cpu_process_total_s"] for r in rs]),
            disk_kib=_agg([r["disk_bytes"] / 1024 for r in rs]),
            cpu_us_step=_agg([r["cpu_loop_finish_s"] / r["steps"] * 1e6 for r in rs]),
            disk_b_step=_agg([r["disk_bytes"] / r["steps"] for r in rs]),
            rss_mib=_agg([r["rss_self_mib"] for r in rs]), rss_child_mib=_agg([r["rss_children_mib"] for r in rs]),
            children=rs[0].get("child_processes"),
            check=check, check_how=how, stored_total=None if check in ("unchecked", "n/a") else sum(stored_list),
            logged_total=logged, sync=sync_txt, sync_raw=s,
        ))
    base = next((r for r in rows if r["name"] == "mldash"), None)

    versions = {d: _version(d) for d in ("ml-dash", "wandb", "mlflow", "tensorboard", "aim", "torch", "orjson",
                                         "matplotlib", "psutil")}
    date = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    md = _markdown(rows, base, skipped, errors, versions, date, args, total_s)
    print()
    print(md)
    if args.results_dir:
        os.makedirs(args.results_dir, exist_ok=True)
        with open(os.path.join(args.results_dir, "compare_trackers.md"), "w") as f:
            f.write(md)
        with open(os.path.join(args.results_dir, "compare_trackers.json"), "w") as f:
            json.dump({"date": date, "machine": _machine(), "versions": versions, "args": vars(args), "cmd": sys.argv,
                       "skipped": skipped, "errors": errors, "rows": rows,
                       "per_rep": {n: results[n] for n in run}}, f, indent=1, default=str)
        png = os.path.join(args.results_dir, "compare_trackers.png")
        msg = _chart(rows, png, date)
        print(msg)
    if base is None and "mldash" in names:
        print("ml-dash did not produce a result", file=sys.stderr)
        return 1
    return 0


def _markdown(rows, base, skipped, errors, versions, date, args, total_s) -> str:
    b = base or {}
    L = []
    L.append("# Tracker comparison: what logging costs the training loop\n")
    L.append(f"- Date: {date}")
    L.append(f"- Machine: {_machine()}")
    L.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v != "-"))
    L.append(f"- Workload: {args.steps:,} steps × 3 scalars (`loss`, `acc`, `lr`), {args.reps} rep(s), each tracker in a "
             f"fresh process, order rotated every rep; numbers are the median over reps. Loop cap {args.max_loop_s:g} s "
             f"(a tracker that hits it logs fewer steps: marked *capped*).")
    la = getattr(args, "load", None)
    load = (f"; 1-min load average {la[0][0]:.1f} at the start, {la[1][0]:.1f} at the end ({os.cpu_count()} cores: "
            f"anything above ~1 beyond the benchmark itself means other work competed)") if la else ""
    L.append(f"- Whole run: {total_s:.0f} s{load}.\n")
    L.append("| tracker | steps | median µs/step | p99 µs/step | × ml-dash (median) | loop s | finish s | "
             "CPU µs/step (tree) | disk B/step | peak RSS MiB | every step stored? | caller syncs/step (tensor) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        rss = _fmt(r["rss_mib"], 0) + (f" + {_fmt(r['rss_child_mib'], 0)}" if r["rss_child_mib"] and r["rss_child_mib"] > 1 else "")
        steps = f"{r['steps']:,}" + (" (capped)" if r["capped"] else "")
        check = r["check"]
        if check == "all":
            check = f"yes ({r['stored_total']:,}/{r['logged_total']:,})"
        L.append(f"| {r['label']} | {steps} | {_fmt(r['median_us'], 2)} | {_fmt(r['p99_us'], 2)} | "
                 f"{_ratio(r['median_us'], b.get('median_us'))} | {_fmt(r['loop_s'], 2)} | {_fmt(r['finish_s'], 3)} | "
                 f"{_fmt(r['cpu_us_step'], 1)} | {_fmt(r['disk_b_step'], 0)} | {rss} | {check} | {r['sync']} |")
    L.append("")
    L.append("Columns: *median/p99 µs/step*: `perf_counter_ns` around each step's logging call on the caller thread "
             "(TensorBoard: its 3 `add_scalar` calls). *loop s*: wall time of the whole loop, timing included. "
             "*finish s*: `complete()` / `finish()` / `end_run()` / `close()` (MLflow async: `flush_async_logging()` "
             "+ `end_run()`). *CPU µs/step (tree)*: user+system CPU of the worker and its descendants during "
             "loop+finish, divided by the steps (descendants: RUSAGE_CHILDREN or psutil samples of those not waited "
             "for, whichever is larger). *disk B/step*: bytes the tracker left in its directory, per step. "
             "*peak RSS*: the worker's max RSS (+ its child processes' peaks, psutil). *every step stored?*: read "
             "back in a fresh process after the worker exited (steps holding all 3 metrics / steps logged, all reps). "
             "*caller syncs/step*: a second pass logs a `requires_grad` 0-d torch tensor plus two tensors and counts "
             "the calls of `Tensor.item/.cpu/.numpy/.tolist/__float__/__int__/__array__` made on the caller thread "
             "inside the logging calls, per step; on a GPU each one waits for the device.\n")
    L.append("Ratios to ml-dash (median over reps):\n")
    L.append("| tracker | median µs | p99 µs | loop time per step | CPU per step | disk per step | what each step calls |")
    L.append("|---|---:|---:|---:|---:|---:|---|")
    lps = lambda r: r["loop_s"] / r["steps"] if r.get("loop_s") is not None else None  # noqa: E731
    for r in rows:
        L.append(f"| {r['label']} | {_ratio(r['median_us'], b.get('median_us'))} | {_ratio(r['p99_us'], b.get('p99_us'))} | "
                 f"{_ratio(lps(r), lps(b) if b else None)} | {_ratio(r['cpu_us_step'], b.get('cpu_us_step'))} | "
                 f"{_ratio(r['disk_b_step'], b.get('disk_b_step'))} | `{r['call']}` |")
    L.append("")
    L.append("Other numbers (median over reps): setup = import + init of the tracker inside the worker; CPU total = the "
             "whole worker process tree from start to exit, imports included (RUSAGE_CHILDREN in the parent).\n")
    L.append("| tracker | setup s | CPU s loop+finish | CPU s total | disk KiB | child processes | readback |")
    L.append("|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        kids = ", ".join(r["children"]) if r["children"] else ("none" if r["children"] is not None else "? (no psutil)")
        L.append(f"| {r['label']} | {_fmt(r['setup_s'], 2)} | {_fmt(r['cpu_s'], 2)} | {_fmt(r['cpu_total_s'], 2)} | "
                 f"{_fmt(r['disk_kib'], 0)} | {kids} | {r['check_how']} |")
    L.append("")
    if any(r["sync_raw"] for r in rows):
        L.append("GPU-sync pass, raw counts (caller thread in the loop / caller thread in finish / other threads):\n")
        for r in rows:
            s = r["sync_raw"]
            if s and "error" not in s:
                L.append(f"- {r['label']}: {s.get('caller_syncs') or {}} / {s.get('caller_syncs_finish') or {}} / "
                         f"{s.get('other_thread_syncs') or {}} over {s['steps']} steps")
            elif s:
                L.append(f"- {r['label']}: {s['error']}")
        L.append("")
    if skipped:
        L.append("Skipped:\n")
        for n, why in skipped.items():
            L.append(f"- {TRACKERS[n][0]}: {why}")
        L.append("")
    if errors:
        L.append("Errors:\n")
        for n, e in errors.items():
            L.append(f"- {TRACKERS[n][0]}: {e}")
        L.append("")
    return "\n".join(L)


def _chart(rows, path, date) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"no PNG: matplotlib is not installed in {sys.executable}"
    rows = [r for r in rows if r["median_us"]]
    labels = [r["label"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.5 * len(rows) + 2.2), sharey=True)
    y = list(range(len(rows)))
    ax = axes[0]
    ax.barh([v - 0.2 for v in y], [r["median_us"] for r in rows], height=0.4, label="median", color="#3b7dd8")
    ax.barh([v + 0.2 for v in y], [r["p99_us"] for r in rows], height=0.4, label="p99", color="#f0a030")
    ax.set_xscale("log")
    ax.set_xlabel("µs per step on the caller thread (log scale)")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    for v, r in zip(y, rows):
        ax.text(r["median_us"], v - 0.2, f" {r['median_us']:.3g}", va="center", fontsize=8)
    ax = axes[1]
    ax.barh(y, [r["cpu_us_step"] or 0 for r in rows], color="#6a9a55")
    ax.set_xscale("log")
    ax.set_xlabel("CPU µs per step, process tree, loop + finish (log scale)")
    for v, r in zip(y, rows):
        ax.text(r["cpu_us_step"] or 0, v, f" {r['cpu_us_step']:.3g}", va="center", fontsize=8)
    steps = max((r["steps"] for r in rows), default=0)
    fig.suptitle(f"Logging 3 scalars a step ({steps:,} steps; MLflow fewer) — {date}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(ORDER))
    p.add_argument("--sync-steps", type=int, default=200, help="steps of the tensor/GPU-sync pass (0: skip it)")
    p.add_argument("--max-loop-s", type=float, default=90.0, help="stop a tracker's loop after this many seconds")
    p.add_argument("--mlflow-steps", type=int, default=2000,
                   help="steps for the two MLflow runs (its sqlite store costs ~5 ms CPU a step; 0: --steps)")
    p.add_argument("--worker-timeout", type=float, default=600.0)
    p.add_argument("--results-dir", default=os.path.join(HERE, "results"), help="'' to write nothing")
    p.add_argument("--workdir", default="", help="where the trackers write (default: a fresh temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the trackers' files")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--readback", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="timing", choices=("timing", "sync"), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.readback:
        print(json.dumps(readback(args.readback, args.out)))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
