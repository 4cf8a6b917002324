#!/usr/bin/env python3
"""Remote sync, end to end, against a real ml-dash server on loopback, beside a baseline checkout in the same run.

* **throughput**: log N points (3 scalars each) as fast as possible, then
  - *local durable*: no remote; from the first ``log()`` until ``flush()`` returned and the JSONL file is fsynced;
  - *remote durable*: with a remote; from the first ``log()`` until the server acknowledges the whole metrics file
    (it moves a stream's offset in the transaction that stores its points, SQLite with ``synchronous=FULL``, so an
    acknowledged point is durable). Printed: both times, their ratio (the goal: remote ≤ 2.5× local) and points/s.
* **steady**: log at a fixed rate (points/s, plus a log line every 100 steps) for some seconds; requests the uploader
  made per run per minute (pacing must stay about one request per second).
* **per-call**: the caller's cost of ``exp.metrics.log`` with no remote, with a remote that is up, and with one that is
  unreachable (the uploader must never slow the training loop).

Every measurement runs in a fresh interpreter, and the server in its own process, both from the code under test:
this checkout, and with ``--baseline DIR`` (a checkout, e.g. ``git worktree add --detach /tmp/base <commit>``) or
``--baseline-ref REF`` (a temporary worktree of REF, removed afterwards) the same scenarios from that code, the
versions alternating rep by rep. Medians over ``--reps``; min and max beside them::

    .venv/bin/python benchmarks/remote_sync.py --quick                      # 200k points, 1 rep, throughput only
    .venv/bin/python benchmarks/remote_sync.py --baseline-ref 0b1b2b2       # 1M points x 3 reps, steady, per-call
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def server_acked(url: str, experiment_id: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/experiments/{experiment_id}/streams", timeout=10) as answer:
        streams = json.load(answer)["streams"]
    return max((v for k, v in streams.items() if k.endswith(":metrics")), default=0)


def server_count(url: str, experiment_id: str, name: str = "loss") -> int:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/experiments/{experiment_id}/metrics/{name}?max_points=1",
                                    timeout=10) as answer:
            return json.load(answer)["count"]
    except urllib.error.HTTPError:
        return 0  # no point stored yet


def worker(args: argparse.Namespace) -> dict:
    from ml_dash import Experiment  # from PYTHONPATH: the checkout under test

    root = tempfile.mkdtemp(prefix="ml-dash-bench-")
    remote = None if args.remote == "none" else args.remote
    exp = Experiment(namespace="bench", workspace="remote", prefix=f"{args.worker}-{os.getpid()}", local_root=root,
                     remote=remote)
    exp.run()
    out: dict = {}
    if args.worker == "throughput":
        t0 = time.perf_counter()
        for i in range(args.points):
            exp.metrics.log(step=i, loss=1.0 / (i + 1), acc=i * 1e-6, lr=0.001)
        out["log_s"] = time.perf_counter() - t0
        exp.flush()
        path = os.path.join(exp.local_path, "metrics.jsonl")
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        out["local_s"] = time.perf_counter() - t0
        size = os.path.getsize(path)
        if remote is not None:
            # Poll the cheap offsets endpoint (a count query on every poll would compete with ingest for the server's
            # CPU); the server moves a stream's offset in the same transaction that stores its points.
            while server_acked(remote, exp.experiment_id) < size:
                time.sleep(0.005)
            out["durable_s"] = time.perf_counter() - t0
            usage = resource.getrusage(resource.RUSAGE_SELF)
            out["client_cpu_s"] = usage.ru_utime + usage.ru_stime
            out["server_count"] = server_count(remote, exp.experiment_id)
            out["requests"] = exp._uploader.api.requests
    elif args.worker == "steady":
        t0 = time.perf_counter()
        step, chunk = 0, max(1, args.rate // 50)
        while time.perf_counter() - t0 < args.steady_seconds:
            for _ in range(chunk):
                exp.metrics.log(step=step, loss=1.0 / (step + 1), acc=0.5, lr=0.001)
                if step % 100 == 0:
                    exp.info(f"step {step}")
                step += 1
            time.sleep(max(0.0, t0 + step / args.rate - time.perf_counter()))
        duration = time.perf_counter() - t0
        out.update(requests=exp._uploader.api.requests, seconds=duration, points=step)
    else:  # percall
        n = args.points
        t0 = time.perf_counter_ns()
        for i in range(n):
            exp.metrics.log(step=i, loss=1.0, acc=0.5, lr=0.001)
        out["ns_per_call"] = (time.perf_counter_ns() - t0) / n
    os.environ["ML_DASH_UPLOAD_TIMEOUT"] = "2"
    exp.complete()
    return out


def run_worker(code: str, name: str, remote: str, extra: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env["PYTHONPATH"] = code
    done = subprocess.run([sys.executable, __file__, "--worker", name, "--remote", remote, *extra],
                          capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"worker {name} ({code}) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class HealthProbe:
    """``GET /health`` every 20 ms on its own connection while ingest runs: the server's event loop must stay
    responsive (decoding happens in its pool). Latencies in ms."""

    def __init__(self, url: str) -> None:
        import threading

        self.url, self.latencies, self.stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            began = time.perf_counter()
            with urllib.request.urlopen(self.url + "/health", timeout=30) as answer:
                answer.read()
            self.latencies.append((time.perf_counter() - began) * 1e3)

    def __enter__(self) -> "HealthProbe":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the server's decoding pool), 0 without psutil."""
    try:
        import psutil
    except ImportError:
        return 0.0
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


@contextlib.contextmanager
def server_from(code: str):
    """A server started from ``code`` (PYTHONPATH), its data in a temporary directory; yields (url, its pid)."""
    from ml_dash.server.testing import server_process

    previous, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = code
    # `python -m` puts the working directory first on sys.path: started from a checkout, the server would import
    # that checkout whatever PYTHONPATH says. Started from the code's own directory, it imports the code under test.
    os.chdir(code)
    try:
        with tempfile.TemporaryDirectory(prefix="ml-dash-bench-server-") as data, \
                server_process(data) as (url, process):
            os.chdir(cwd)
            yield url, process.pid
    finally:
        os.chdir(cwd)
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


@contextlib.contextmanager
def baseline_checkout(args: argparse.Namespace):
    if args.baseline or not args.baseline_ref:
        yield args.baseline
        return
    path = tempfile.mkdtemp(prefix="ml-dash-bench-baseline-")
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", path, args.baseline_ref], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", path], capture_output=True)


def stats(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=None, help="default 1,000,000 (--quick: 200,000)")
    parser.add_argument("--reps", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--quick", action="store_true", help="throughput only, 200k points, one rep")
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=2000, help="points/s in the steady scenario")
    parser.add_argument("--baseline", help="a checkout of the code to compare with")
    parser.add_argument("--baseline-ref", help="a git ref to compare with (a temporary worktree)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--remote", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.points = args.points or (200_000 if args.quick else 1_000_000)
    args.reps = args.reps or (1 if args.quick else 3)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    sys.path.insert(0, REPO)
    from ml_dash.server.testing import free_port

    common = ["--points", str(args.points), "--steady-seconds", str(args.steady_seconds), "--rate", str(args.rate)]
    with baseline_checkout(args) as baseline:
        versions = [("this checkout", REPO)] + ([("baseline", os.path.abspath(baseline))] if baseline else [])
        results: dict[str, dict[str, list]] = {label: {} for label, _ in versions}
        for rep in range(args.reps):
            for label, code in versions if rep % 2 == 0 else versions[::-1]:
                got = results[label]
                local = run_worker(code, "throughput", "none", common)
                got.setdefault("local", []).append(local["local_s"])
                with server_from(code) as (url, pid):
                    cpu_before = tree_cpu(pid)
                    with HealthProbe(url) as probe:
                        remote = run_worker(code, "throughput", url, common)
                    got.setdefault("health", []).extend(probe.latencies)
                    got.setdefault("server_cpu", []).append(tree_cpu(pid) - cpu_before)
                    if not args.quick and rep == 0:
                        got["steady"] = [run_worker(code, "steady", url, common)]
                        percall = {"no remote": run_worker(code, "percall", "none", common),
                                   "remote up": run_worker(code, "percall", url, common),
                                   "remote unreachable": run_worker(code, "percall", f"http://127.0.0.1:{free_port()}",
                                                                    common)}
                        got["percall"] = [{k: v["ns_per_call"] for k, v in percall.items()}]
                got.setdefault("loop", []).append(remote["log_s"])
                got.setdefault("remote", []).append(remote["durable_s"])
                got.setdefault("ratio", []).append(remote["durable_s"] / local["local_s"])
                got.setdefault("requests", []).append(remote["requests"])
                got.setdefault("client_cpu", []).append(remote["client_cpu_s"])
                got.setdefault("count", []).append(remote["server_count"])

    print(f"ml-dash remote sync benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}, loopback, "
          f"{args.points:,} points x 3 scalars, {args.reps} rep(s); median (min-max))")
    labels = [label for label, _ in versions]
    rows = [
        ("local durable: log -> fsynced file, s", lambda g: stats(g["local"])),
        ("remote durable: log -> server DB, s", lambda g: stats(g["remote"])),
        ("remote / local (goal <= 2.5)", lambda g: stats(g["ratio"])),
        ("remote durable points/s", lambda g: f"{args.points / statistics.median(g['remote']):,.0f}"),
        ("caller loop (remote run), s", lambda g: stats(g["loop"])),
        ("client process CPU (remote run), s", lambda g: stats(g["client_cpu"])),
        ("server CPU (with its pool), s", lambda g: stats(g["server_cpu"])),
        ("requests", lambda g: f"{statistics.median(g['requests']):.0f}"),
        ("/health during ingest p50/p99/p99.9/max, ms", lambda g: "/".join(
            f"{percentile(g['health'], q):.0f}" for q in (0.5, 0.99, 0.999, 1.0))),
        ("points counted on the server", lambda g: f"{min(g['count']):,}"),
    ]
    if not args.quick:
        rows.append(("steady: requests per run per minute",
                     lambda g: f"{g['steady'][0]['requests'] / g['steady'][0]['seconds'] * 60:.1f}"))
        for key in ("no remote", "remote up", "remote unreachable"):
            rows.append((f"per-call log(), {key}, ns", lambda g, key=key: f"{g['percall'][0][key]:,.0f}"))
    width = max(len(label) for label, _ in rows)
    print(f"  {'':<{width}}  " + "  ".join(f"{label:>22}" for label in labels))
    for label, cell in rows:
        print(f"  {label:<{width}}  " + "  ".join(f"{cell(results[v]):>22}" for v in labels))
    if len(labels) == 2:
        new, old = (statistics.median(results[v]["remote"]) for v in labels)
        print(f"  remote durable time, this checkout / baseline: {new / old:.2f}x ({old / new:.2f}x faster)")


if __name__ == "__main__":
    main()
