"""Event-loop lag while a coroutine logs a burst: a 1 ms ticker task's worst lag, beside the same loop not logging.

In a fresh interpreter per case, one coroutine runs ``--steps`` iterations of ``log(step=i, loss=<value>, acc=0.75,
lr=0.001)`` and yields (``await asyncio.sleep(0)``) every 100 calls, then ``await exp.flush_async()``; meanwhile a
ticker task sleeps 1 ms in a loop and records how late each wake-up is. Cases: the writer as a thread (the default)
and as a task on the loop (``ML_DASH_WRITER=asyncio``), ``loss`` a float or a 0-d CPU tensor, and the same loop with
no logging call as the baseline. Each process runs one full ``gc.collect()`` before it starts: the first full
collection after ``import torch`` walks torch's ~170k objects (~200 ms here), in any program, and would otherwise land
in whichever case allocates first. ``--against DIR`` runs the logging cases on another checkout too (before/after in one
run). Goal: worst lag within 10 ms of the loop without logging.

    python benchmarks/asyncio_lag.py --quick              # 20k steps, 1 repetition
    python benchmarks/asyncio_lag.py --against /tmp/base  # 100k steps x 3, this tree and a baseline
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
import asyncio, json, sys, tempfile, time
value_kind, logging_on, n = sys.argv[1], sys.argv[2] == "log", int(sys.argv[3])
if value_kind == "tensor":
    import torch
    value = torch.tensor(0.5)
else:
    value = 0.5
import gc, ml_dash
exp = ml_dash.Experiment(namespace="bench", workspace="lag", prefix="run", local_root=tempfile.mkdtemp())
gc.collect()  # a process that has trained a while has had its first full collection (~200 ms once torch is imported)

async def main():
    lags, running = [], [True]
    async def ticker():
        while running[0]:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t0 - 0.001)
    async with exp.run():
        log = exp.metrics.log
        log(step=-1, loss=0.0)  # starts the writer (a thread, or a task on this loop)
        await exp.flush_async()
        tick = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        for i in range(n):
            if logging_on:
                log(step=i, loss=value, acc=0.75, lr=0.001)
            if i % 100 == 99:
                await asyncio.sleep(0)
        if logging_on:
            await exp.flush_async()
        elapsed = time.perf_counter() - t0
        running[0] = False
        await tick
    lags.sort()
    return {"max_ms": lags[-1] * 1e3, "p99_ms": lags[int(len(lags) * 0.99)] * 1e3, "ticks": len(lags),
            "elapsed_ms": elapsed * 1e3}

print(json.dumps(asyncio.run(main())))
"""


def run(tree: str, writer: str, value: str, logging_on: bool, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    # The run's other threads (system sampler, environment capture) off: this measures the logging call and writer.
    env.update(PYTHONPATH=tree, ML_DASH_WRITER=writer, ML_DASH_SYSTEM_METRICS="0", ML_DASH_CAPTURE_ENVIRONMENT="0")
    out = subprocess.run([sys.executable, "-c", WORKER, value, "log" if logging_on else "none", str(steps)],
                         capture_output=True, text=True, env=env, check=True,
                         cwd=tempfile.gettempdir())  # not cwd: '-c' puts it first on sys.path, before PYTHONPATH
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20k steps, 1 repetition")
    parser.add_argument("--against", metavar="DIR", help="another checkout to measure in the same run (baseline)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.reps = 20_000, 1
    trees = {"this": HERE}
    if args.against:
        trees["base"] = os.path.abspath(args.against)
    cases = [("this", "thread", value, False) for value in ("float", "tensor")]
    cases += [(tree, writer, value, True) for tree in trees for writer in ("thread", "asyncio")
              for value in ("float", "tensor")]
    results: dict[tuple, list[dict]] = {case: [] for case in cases}
    for rep in range(args.reps):
        for case in (cases if rep % 2 == 0 else cases[::-1]):
            tree, writer, value, logging_on = case
            results[case].append(run(trees[tree], writer, value, logging_on, args.steps))
    med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in results.items()}
    print(f"# asyncio lag: {args.steps:,} steps, a yield every 100, x {args.reps} reps (medians), "
          f"{os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| tree | writer | loss is | logging | ticker worst lag (ms) | p99 (ms) | worst - no logging (ms) "
          "| burst + flush (ms) |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    goals = []
    for case in cases:
        tree, writer, value, logging_on = case
        r = med[case]
        floor = med[("this", "thread", value, False)]
        extra = r["max_ms"] - floor["max_ms"]
        print(f"| {tree} | {writer if logging_on else '-'} | {value} | {'yes' if logging_on else 'no'} | "
              f"{r['max_ms']:.2f} | {r['p99_ms']:.2f} | {extra:+.2f} | {r['elapsed_ms']:.0f} |")
        if tree == "this" and logging_on:
            goals.append((f"{writer}/{value} worst lag within 10 ms of no logging", extra <= 10))
    print()
    print("goals: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals))


if __name__ == "__main__":
    main()
