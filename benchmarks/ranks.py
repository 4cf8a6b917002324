"""64 ranks × 10k steps × 3 metrics to one server (docs/distributed.md): exactly once, time to durable, server CPU and
memory, beside a baseline in the same run: the same points from one plain run (one stream).

The ranks are simulated as streams: ``--processes`` client processes (default 8) each open ``64 / processes`` ranks
of one job (``Experiment(rank=r, world_size=64, job_id=...)``) in one directory, log their steps interleaved and end
the runs; each process's uploader sends its ranks' streams. Timed: from the start of logging until every ``complete()``
returned with the upload finished (``ML_DASH_UPLOAD_TIMEOUT`` is large, so that is when the server has acknowledged
every byte: durable). Then every rank's series is read back and its point count checked.

    python benchmarks/ranks.py --quick     # 64 ranks × 1k steps
    python benchmarks/ranks.py             # 64 ranks × 10k steps
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import psutil

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from ml_dash.server.testing import server_process  # noqa: E402

CHILD = r"""
import sys
from ml_dash import Experiment
first, count, world, steps, root, remote, prefix = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                                  int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7])
exps = [Experiment(namespace="bench", workspace="ranks", prefix=prefix, local_root=root, remote=remote,
                   rank=r if world > 1 else None, world_size=world if world > 1 else None,
                   job_id="bench-job" if world > 1 else None, console=False, system_metrics=False,
                   capture_environment=False) for r in range(first, first + count)]
for exp in exps:
    exp.run()
for step in range(steps):
    for exp in exps:
        exp.metrics.log(step=step, loss=1.0 / (step + 1), acc=step * 1e-4, lr=3e-4)
for exp in exps:
    exp.complete()
"""


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=120) as answer:
        return json.loads(answer.read())


def run(world: int, steps: int, processes: int, prefix: str, base: str, root: str, server: psutil.Process) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env.update(PYTHONPATH=HERE + os.pathsep + env.get("PYTHONPATH", ""), ML_DASH_UPLOAD_TIMEOUT="3600")
    per = max(1, world // processes)
    cpu0 = sum(server.cpu_times()[:2])
    peak = [server.memory_info().rss]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], server.memory_info().rss)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(first), str(min(per, world - first)), str(world),
                                  str(steps), root, base, prefix], env=env)
                for first in range(0, world, per)]
    for child in children:
        assert child.wait() == 0
    took = time.perf_counter() - start
    stop.set()
    cpu = sum(server.cpu_times()[:2]) - cpu0
    experiment = [e for e in get_json(f"{base}/api/v1/experiments?limit=1000")["experiments"] if e["prefix"] == prefix][0]
    counts = []
    for rank in range(world):
        for name in ("loss", "acc", "lr"):
            counts.append(get_json(f"{base}/api/v1/experiments/{experiment['id']}/metrics/{name}?rank={rank}")["count"])
    return {"took": took, "cpu": cpu, "rss": peak[0], "points": sum(counts),
            "exact": all(c == steps for c in counts), "status": experiment["status"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps = 1_000 if args.quick else args.steps
    with tempfile.TemporaryDirectory() as tmp, server_process(os.path.join(tmp, "data")) as (base, process):
        server = psutil.Process(process.pid)
        rows = [("baseline: 1 plain run, same points", run(1, steps * args.ranks, 1, "plain", base, tmp, server)),
                (f"{args.ranks} ranks in {args.processes} processes", run(args.ranks, steps, args.processes, "job",
                                                                         base, tmp, server))]
    print(f"{args.ranks} ranks x {steps} steps x 3 metrics; python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"{'configuration':40} {'durable s':>9} {'server cpu s':>12} {'server rss MB':>13} {'points':>9} exactly-once")
    for name, r in rows:
        print(f"{name:40} {r['took']:9.1f} {r['cpu']:12.1f} {r['rss'] / 2**20:13.0f} {r['points']:9} "
              f"{r['exact']} ({r['status']})")


if __name__ == "__main__":
    main()
