#!/usr/bin/env python3
"""Remote sync, end to end, against a real ml-dash server on loopback.

* **throughput**: log N points (3 scalars each) as fast as possible; points/s from the first ``log()`` until the server
  reports all N points stored (the server acknowledges a batch only after its SQLite transaction committed, with
  ``synchronous=FULL``, so a counted point is durable). Polls the server's REST API to see the counts.
* **steady**: log at a fixed rate (points/s, plus a log line every 100 steps) for some seconds; requests the uploader
  made per run per minute.
* **per-call**: the caller's cost of ``exp.metrics.log`` with no remote, with a remote that is up, and with one that is
  unreachable (the uploader must never slow the training loop).

Each scenario runs in a fresh interpreter (its own writer and uploader threads). Finishes in well under 2 minutes::

    .venv/bin/python benchmarks/remote_sync.py [--points 200000] [--steady-seconds 20] [--rate 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def server_count(url: str, experiment_id: str, name: str = "loss") -> int:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/experiments/{experiment_id}/metrics/{name}?max_points=1",
                                    timeout=10) as answer:
            return json.load(answer)["count"]
    except urllib.error.HTTPError:
        return 0  # no point stored yet


def server_acked(url: str, experiment_id: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/experiments/{experiment_id}/streams", timeout=10) as answer:
        streams = json.load(answer)["streams"]
    return max((v for k, v in streams.items() if k.endswith(":metrics")), default=0)


def worker(args: argparse.Namespace) -> dict:
    from ml_dash import Experiment

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
        size = os.path.getsize(os.path.join(exp.local_path, "metrics.jsonl"))
        # Poll the cheap offsets endpoint (a count query on every poll would compete with ingest for the server's
        # CPU); the server moves a stream's offset in the same transaction that stores its points.
        while server_acked(remote, exp.experiment_id) < size:
            time.sleep(0.01)
        out["durable_s"] = time.perf_counter() - t0
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


def run_worker(name: str, remote: str, extra: list[str], env: dict | None = None) -> dict:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    full_env["PYTHONPATH"] = REPO
    full_env.update(env or {})
    done = subprocess.run([sys.executable, __file__, "--worker", name, "--remote", remote, *extra],
                          capture_output=True, text=True, timeout=300, env=full_env)
    if done.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=2000, help="points/s in the steady scenario")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--remote", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    from ml_dash.server.testing import free_port, running_server

    common = ["--points", str(args.points), "--steady-seconds", str(args.steady_seconds), "--rate", str(args.rate)]
    with tempfile.TemporaryDirectory(prefix="ml-dash-bench-server-") as data, running_server(data) as url:
        tp = run_worker("throughput", url, common)
        steady = run_worker("steady", url, common)
        percall = {label: run_worker("percall", remote, common, env)["ns_per_call"] for label, remote, env in (
            ("no remote", "none", None),
            ("remote up", url, None),
            ("remote unreachable", f"http://127.0.0.1:{free_port()}", None))}

    rows = [
        ("throughput: points", f"{args.points:,} x 3 scalars"),
        ("  caller loop", f"{tp['log_s']:.2f} s ({args.points / tp['log_s']:,.0f} points/s)"),
        ("  log -> server DB durable", f"{tp['durable_s']:.2f} s ({args.points / tp['durable_s']:,.0f} points/s)"),
        ("  points counted on the server", f"{tp['server_count']:,}"),
        ("  requests", f"{tp['requests']}"),
        (f"steady: {args.rate} points/s + logs", f"{steady['seconds']:.1f} s, {steady['points']:,} points"),
        ("  requests per run per minute", f"{steady['requests'] / steady['seconds'] * 60:.1f}"),
    ] + [(f"per-call log(), {label}", f"{ns:,.0f} ns") for label, ns in percall.items()]
    width = max(len(r[0]) for r in rows)
    print(f"ml-dash remote sync benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}, loopback)")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
