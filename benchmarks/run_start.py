"""Caller cost of ``exp.run()`` with the environment capture and the system-metrics sampler, beside both turned off,
measured in the same run (docs/system-metrics.md).

Each configuration runs in a fresh interpreter, in a throw-away git repository with a dirty tracked file (so git has
something to report and ``save_code`` a diff to save). Per configuration: ``--runs`` experiments, each timed around
``exp.run()`` alone (the first one, which starts the threads' machinery, reported apart), then the time until the
helper thread wrote the environment (not on the caller), and ``metrics.log`` latency while the capture runs (the
helper holds the GIL in stretches while it reads package metadata; the interpreter's switch interval bounds each).

    python benchmarks/run_start.py --quick      # 20 runs per configuration: ~20 s
    python benchmarks/run_start.py              # 100 runs per configuration
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

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = [  # name, Experiment keyword arguments
    ("off: capture_environment=False, system_metrics=False", {"capture_environment": False, "system_metrics": False}),
    ("sampler only", {"capture_environment": False, "system_metrics": True}),
    ("capture only", {"capture_environment": True, "system_metrics": False}),
    ("default: capture + sampler", {}),
    ("default + save_code=True", {"save_code": True}),
]

WORKER = r"""
import json, os, sys, tempfile, time
from ml_dash import Experiment
from ml_dash.client import experiment as _experiment
kwargs, runs, logs = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
timer = time.perf_counter_ns
root = tempfile.mkdtemp()
run_ns, added_ns, helper_ms, log_ns = [], [], [], []

def timed(function):  # what run() spends starting the two helpers, apart from the meta file's fsync'ed write
    def wrapper(*args, **kw):
        a = timer()
        try:
            return function(*args, **kw)
        finally:
            added_ns[-1] += timer() - a
    return wrapper

_experiment.start_sampler = timed(_experiment.start_sampler)
_experiment.EnvironmentCapture = timed(_experiment.EnvironmentCapture)
for i in range(runs):
    exp = Experiment(namespace="bench", workspace="start", prefix=f"run-{i}", local_root=root, **kwargs)
    added_ns.append(0)
    t0 = timer()
    exp.run()
    t1 = timer()
    run_ns.append(t1 - t0)
    if i == runs - 1:  # the last run: log while its capture is (probably still) going on
        log = exp.metrics.log
        for step in range(logs):
            a = timer()
            log(step=step, loss=0.5)
            log_ns.append(timer() - a)
    capture = exp._capture
    if capture is not None:
        capture.wait(60)
        helper_ms.append((timer() - t0) / 1e6)
    exp.complete()
print(json.dumps({"run_ns": run_ns, "added_ns": added_ns, "helper_ms": helper_ms, "log_ns": log_ns}))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_repo(path: str) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "b@example.com")
    git("config", "user.name", "bench")
    with open(os.path.join(path, "train.py"), "w") as f:
        f.write("lr = 0.1\n" * 200)
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    with open(os.path.join(path, "train.py"), "a") as f:
        f.write("lr = 0.01\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="experiments per configuration")
    parser.add_argument("--logs", type=int, default=20_000, help="metrics.log calls timed during the last capture")
    parser.add_argument("--quick", action="store_true", help="20 runs per configuration")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    runs = 20 if args.quick else args.runs
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    results = {}
    with tempfile.TemporaryDirectory() as repo:
        make_repo(repo)
        for name, kwargs in CONFIGS:
            done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(kwargs), str(runs), str(args.logs)],
                                  cwd=repo, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                sys.exit(f"{name}: {done.stderr[-2000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = statistics.median(results[CONFIGS[0][0]]["run_ns"][1:])
    print(f"run() caller cost, {runs} runs per configuration (Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs); ratios against 'off' (median of runs after the first)\n")
    print("run() includes the meta file's atomic write (fsync), which dominates and varies with the disk; 'helpers'\n"
          "is the part of run() spent starting the sampler and the capture (median / max).\n")
    print("| configuration | first run() µs | median µs | p99 µs | p99.9 µs | max µs | ratio | helpers µs median / max "
          "| helper done ms (median) | log() during capture p99.9 / max µs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, _ in CONFIGS:
        r = results[name]
        rest = [v / 1000 for v in r["run_ns"][1:]] or [r["run_ns"][0] / 1000]
        helper = f"{statistics.median(r['helper_ms']):.1f}" if r["helper_ms"] else "—"
        logs = [v / 1000 for v in r["log_ns"]]
        added = [v / 1000 for v in r["added_ns"]]
        print(f"| {name} | {r['run_ns'][0] / 1000:.0f} | {statistics.median(rest):.0f} | {percentile(rest, 0.99):.0f} "
              f"| {percentile(rest, 0.999):.0f} | {max(rest):.0f} | {statistics.median(rest) * 1000 / base:.2f} "
              f"| {statistics.median(added):.0f} / {max(added):.0f} | {helper} | {percentile(logs, 0.999):.1f} / {max(logs):.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
