"""Hot-path cost of ``exp.metrics.log`` beside a ``deque.append(dict)`` baseline measured in the same run.

Each scenario runs in fresh subprocesses (clean RSS), repetitions interleaved: one that times every call (per-call
median and p99 on the caller) and one untimed loop (total process CPU per step including the writer thread and the
final flush, rows/s sustained until the rows are in the files, peak RSS) — with ratios to the baseline.

    python benchmarks/hot_path.py            # 1M steps x 3 repetitions
    python benchmarks/hot_path.py --steps 100000 --reps 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

WORKER = r"""
import collections, json, os, resource, sys, tempfile, time
scenario, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
timer = time.perf_counter_ns
if scenario == "deque":
    q = collections.deque()
    def call(i, loss, acc, lr):
        q.append({"step": i, "loss": loss, "acc": acc, "lr": lr})
    finish = lambda: None
else:
    from ml_dash import Experiment
    exp = Experiment(namespace="bench", workspace="hot", prefix="run", local_root=tempfile.mkdtemp())
    exp.run()
    log = exp.metrics.log
    def call(i, loss, acc, lr):
        log(step=i, loss=loss, acc=acc, lr=lr)
    finish = exp.complete
out = {}
if mode == "latency":  # each call timed on the caller
    lat = [0] * n
    empty = []
    for _ in range(20000):  # the cost of reading the timer twice, subtracted from every sample
        t0 = timer(); empty.append(timer() - t0)
    timer_cost = sorted(empty)[len(empty) // 2]
    for i in range(n):
        t0 = timer()
        call(i, 0.5, 0.75, 0.001)
        lat[i] = timer() - t0
    finish()
    lat.sort()
    out = {"median_ns": max(0, lat[n // 2] - timer_cost), "p99_ns": max(0, lat[int(n * 0.99)] - timer_cost)}
else:  # throughput: an untimed loop, then everything durable in the files
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(n):
        call(i, 0.5, 0.75, 0.001)
    finish()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    out = {"cpu_per_step_ns": cpu / n * 1e9, "rows_per_s": n / wall,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
print(json.dumps(out))
"""


def run(scenario: str, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = {}
    for mode in ("latency", "throughput"):  # separate processes: timing each call would slow the throughput loop
        out = subprocess.run([sys.executable, "-c", WORKER, scenario, mode, str(steps)], capture_output=True, text=True,
                             env=env, check=True)
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"deque": [], "ml-dash": []}
    for rep in range(args.reps):
        for scenario in (["deque", "ml-dash"] if rep % 2 == 0 else ["ml-dash", "deque"]):
            results[scenario].append(run(scenario, args.steps))
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in results.items()}
    base, ours = med["deque"], med["ml-dash"]
    print(f"# hot path: {args.steps:,} steps x {args.reps} reps, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("(medians over repetitions; ml-dash includes the writer thread and the final flush to disk)\n")
    print(f"| metric | deque.append(dict) | ml-dash metrics.log | ratio |")
    print(f"|---|---|---|---|")
    rows = [("per-call median (ns)", "median_ns", "{:.0f}"), ("per-call p99 (ns)", "p99_ns", "{:.0f}"),
            ("process CPU per step (ns)", "cpu_per_step_ns", "{:.0f}"), ("rows/s sustained", "rows_per_s", "{:,.0f}"),
            ("peak RSS (MB)", "peak_rss_mb", "{:.0f}")]
    for label, key, fmt in rows:
        ratio = ours[key] / base[key] if base[key] else float("inf")
        print(f"| {label} | {fmt.format(base[key])} | {fmt.format(ours[key])} | {ratio:.2f}x |")
    print()
    goals = [("median <= 1 us", ours["median_ns"] <= 1000), ("median <= 5x deque", ours["median_ns"] <= 5 * base["median_ns"]),
             ("CPU/step <= 5 us", ours["cpu_per_step_ns"] <= 5000), (">= 500k rows/s", ours["rows_per_s"] >= 500_000)]
    print("goals: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals))


if __name__ == "__main__":
    main()
