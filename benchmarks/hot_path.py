"""Hot-path cost of ``exp.metrics.log`` beside a ``deque.append(dict)`` floor measured in the same run.

Every scenario runs in fresh interpreters, repetitions interleaved:

* latency: every call timed on the caller (median, p99, p99.9, max), while the writer thread runs as usual; and the
  calls of 20 µs or more, per 100k calls and per second of calling. The floor's rate per second is the machine's
  own (timer interrupts, a hypervisor): a call twice as long meets twice as many per 100k calls, which is what moves a
  p99.9 measured per call. A rate per second above the floor's is what the writer adds (GIL hand-overs);
* throughput: an untimed loop, then ``complete()`` (process CPU per step including the writer, rows/s until the rows
  are in the files, peak RSS);
* writer GIL hold: the steps are logged untimed and flushed; the writer's longest stretch of CPU time between two
  points where it lets go of the GIL (``os.writev``, its pacing, its wait for work), measured with thread CPU time so a
  busy machine does not inflate it; beside it, the worst lag of a ticker thread (``sleep(0.5 ms)`` in a loop, wall
  time) while the main thread waits in ``flush()``;
* import: ``import ml_dash`` in a fresh interpreter (median of ``--imports`` runs).

Scenarios: ``log(step=i, loss=…, acc=0.75, lr=0.001)`` with ``loss`` a float, a 0-d CPU tensor, or a 1-element 1-d
CPU tensor. Each process runs one ``gc.collect()`` first (the first full collection after ``import torch`` walks
~170k objects, ~200 ms, in any program). ``--against DIR`` also runs the ml-dash scenarios on another checkout (e.g. ``main`` in a
``git worktree``), so a before/after comes from one run.

    python benchmarks/hot_path.py --quick                 # 100k steps x 1 rep: a minute
    python benchmarks/hot_path.py --against /tmp/base     # 1M steps x 3 reps, this tree and the baseline
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

WORKER = r"""
import bisect, collections, json, os, resource, sys, tempfile, threading, time
scenario, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
timer = time.perf_counter_ns
if scenario == "deque":
    q = collections.deque()
    def call(i, loss):
        q.append({"step": i, "loss": loss, "acc": 0.75, "lr": 0.001})
    finish = flush = lambda: None
    value = 0.5
else:
    from ml_dash import Experiment
    exp = Experiment(namespace="bench", workspace="hot", prefix="run", local_root=tempfile.mkdtemp())
    exp.run()
    log = exp.metrics.log
    def call(i, loss):
        log(step=i, loss=loss, acc=0.75, lr=0.001)
    finish, flush = exp.complete, exp.flush
    if scenario == "float":
        value = 0.5
    else:
        import torch
        value = torch.tensor(0.5) if scenario == "tensor" else torch.tensor([0.5])
import gc
gc.collect()  # as in a process that has run a while: the first full collection after import torch takes ~200 ms
out = {}
if mode == "latency":  # each call timed on the caller
    lat = [0] * n
    empty = []
    for _ in range(20000):  # the cost of reading the timer twice, subtracted from every sample
        t0 = timer(); empty.append(timer() - t0)
    timer_cost = sorted(empty)[len(empty) // 2]
    start = timer()
    for i in range(n):
        t0 = timer()
        call(i, value)
        lat[i] = timer() - t0
    loop_s = (timer() - start) / 1e9
    finish()
    lat.sort()
    pick = lambda q: max(0, lat[min(n - 1, int(n * q))] - timer_cost)
    out = {"median_ns": pick(0.5), "p99_ns": pick(0.99), "p999_ns": pick(0.999), "max_ns": pick(1.0)}
    # Stalls: calls of 20 µs or more, per 100k calls and per second of the loop. The floor's rate per second is the
    # machine's own (interrupts, the hypervisor); a slower call is exposed to more of them per 100k calls.
    stalls = n - bisect.bisect_left(lat, 20_000 + timer_cost)
    out.update(stalls_per_100k=stalls * 100_000 / n, stalls_per_s=stalls / loop_s)
elif mode == "throughput":  # an untimed loop, then everything durable in the files
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(n):
        call(i, value)
    finish()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    out = {"cpu_per_step_ns": cpu / n * 1e9, "rows_per_s": n / wall,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
else:  # gil: how long the writer holds the GIL at a stretch
    # (1) the writer's CPU time between two points where it releases the GIL (os.writev, its pacing sleep, its wait
    # for work): thread CPU time, so other processes on a busy machine do not inflate it;
    # (2) a ticker thread (sleep 0.5 ms in a loop) while the main thread waits in flush(): its worst lag (wall time).
    import ml_dash.client.sinks.jsonl as sink_module
    from ml_dash.client.pipeline.process import PIPELINE
    stretches, mark = [], [None]
    def released(fn):
        def wrapper(*args, **kwargs):
            if threading.current_thread().name != "ml-dash-writer":
                return fn(*args, **kwargs)
            now = time.thread_time()
            if mark[0] is not None:
                stretches.append(now - mark[0])
            try:
                return fn(*args, **kwargs)
            finally:
                mark[0] = time.thread_time()
        return wrapper
    if hasattr(sink_module, "_writev"):
        sink_module._writev = released(sink_module._writev)
    else:  # a tree from before writev
        sink_module._write = released(sink_module._write)
    try:
        import ml_dash.client.pipeline.pace as pace_module
        pace_module._sleep = released(pace_module._sleep)
    except ImportError:  # a tree without pacing
        pass
    call(0, value)
    PIPELINE.writer._event.wait = released(PIPELINE.writer._event.wait)
    for i in range(1, n):
        call(i, value)
    lags, stop = [], threading.Event()
    def tick():
        while not stop.is_set():
            t0 = time.perf_counter(); time.sleep(0.0005); lags.append(time.perf_counter() - t0 - 0.0005)
    ticker = threading.Thread(target=tick); ticker.start()
    t0 = time.perf_counter(); flush(); drain = time.perf_counter() - t0
    stop.set(); ticker.join(); finish()
    lags.sort()
    out = {"gil_max_ms": max(stretches) * 1e3, "ticker_max_ms": lags[-1] * 1e3, "drain_ms": drain * 1e3}
print(json.dumps(out))
"""

IMPORT = "import time; t0 = time.perf_counter(); import ml_dash; print((time.perf_counter() - t0) * 1e3)"


# The run's other threads (the system-metrics sampler, the environment capture at run start) are off: this measures
# the logging call and its writer, the same in every tree; benchmarks/run_start.py measures those threads.
QUIET = {"ML_DASH_SYSTEM_METRICS": "0", "ML_DASH_CAPTURE_ENVIRONMENT": "0"}


def run(tree: str, scenario: str, mode: str, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree, **QUIET)
    out = subprocess.run([sys.executable, "-c", WORKER, scenario, mode, str(steps)], capture_output=True, text=True,
                         env=env, check=True, cwd=tempfile.gettempdir())  # not cwd: '-c' puts it first on sys.path
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_ms(tree: str, runs: int) -> float:
    env = dict(os.environ, PYTHONPATH=tree)
    times = [float(subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, env=env, check=True,
                                  cwd=tempfile.gettempdir()).stdout) for _ in range(runs)]
    return statistics.median(times)


def fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--imports", type=int, default=7, help="fresh interpreters timed for the import row")
    parser.add_argument("--quick", action="store_true", help="100k steps, 1 repetition, 5 imports")
    parser.add_argument("--against", metavar="DIR", help="another checkout to measure in the same run (baseline)")
    parser.add_argument("--scenarios", default="float,tensor,tensor1d")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.reps, args.imports = 100_000, 1, 5
    trees = {"this": HERE}
    if args.against:
        trees["base"] = os.path.abspath(args.against)
    scenarios = args.scenarios.split(",")
    cases = [("floor", "deque")] + [(t, s) for t in trees for s in scenarios]
    results: dict[tuple, list[dict]] = {case: [] for case in cases}
    for rep in range(args.reps):
        for case in (cases if rep % 2 == 0 else cases[::-1]):
            tree = trees.get(case[0], HERE)
            result = {}
            for mode in ("latency", "throughput") + (("gil",) if case[1] != "deque" else ()):
                result.update(run(tree, case[1], mode, args.steps))
            results[case].append(result)
    med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in results.items()}
    floor = med[("floor", "deque")]
    print(f"# hot path: {args.steps:,} steps x {args.reps} reps, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; log(step=i, loss=<value>, acc=0.75, lr=0.001)")
    print("(medians over repetitions; latency in µs per call on the caller, the writer thread running; system sampler "
          "and environment capture off)\n")
    print("| tree | loss is | median | p99 | p99.9 | max | median / float | p99.9 / floor p99.9 | calls >= 20 µs per 100k "
          "| ... per s of calls | CPU/step (µs) | rows/s | peak RSS (MB) | writer's longest GIL hold (ms CPU) "
          "| ticker worst lag (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        r = med[case]
        float_median = med.get((case[0], "float"), r)["median_ns"]
        gil = f"{r['gil_max_ms']:.2f} | {r['ticker_max_ms']:.2f}" if "gil_max_ms" in r else "- | -"
        label = "deque.append(dict)" if case[1] == "deque" else case[1]
        print(f"| {case[0]} | {label} | {fmt_ns(r['median_ns'])} | {fmt_ns(r['p99_ns'])} | {fmt_ns(r['p999_ns'])} | "
              f"{fmt_ns(r['max_ns'])} | {r['median_ns'] / float_median:.2f}x | {r['p999_ns'] / floor['p999_ns']:.2f}x | "
              f"{r['stalls_per_100k']:.0f} | {r['stalls_per_s']:.0f} | "
              f"{r['cpu_per_step_ns'] / 1000:.2f} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} | {gil} |")
    print()
    imports = {t: import_ms(path, args.imports) for t, path in trees.items()}
    print("| tree | import ml_dash (ms, fresh interpreter, median of %d) |" % args.imports)
    print("|---|---:|")
    for t, ms in imports.items():
        print(f"| {t} | {ms:.1f} |")
    print()
    ours = {s: med[("this", s)] for s in scenarios}
    goals = []
    if "float" in ours and "tensor" in ours:
        goals.append(("tensor median <= 1.5x float", ours["tensor"]["median_ns"] <= 1.5 * ours["float"]["median_ns"]))
    for s in ("float", "tensor"):
        if s in ours:
            goals.append((f"{s} p99.9 <= 3x floor", ours[s]["p999_ns"] <= 3 * floor["p999_ns"]))
            goals.append((f"{s} writer GIL hold <= ~1 ms", ours[s]["gil_max_ms"] <= 1.5))
    goals.append(("import <= 60 ms", imports["this"] <= 60))
    print("goals: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals))


if __name__ == "__main__":
    main()
