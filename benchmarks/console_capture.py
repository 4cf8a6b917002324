"""``print()`` of 100k short lines inside a run with console capture on, beside capture off, in the same run
(docs/distributed.md). Goal: wall time ≤ 1.3× with nothing lost.

Each configuration runs in a fresh interpreter whose stdout is a file (as under a batch scheduler) or a pipe read by
this script (``--pipe``: as under a launcher that collects output, the common case of a distributed job). Timed: from
just before the first ``print`` to the end of ``complete()`` (which stops the capture and waits for the writer: the
console rows are durable then). Counted: the lines that reached the terminal and the lines stored in
``console.jsonl``, against the lines printed.

    python benchmarks/console_capture.py --quick     # 3 repetitions of 100k lines
    python benchmarks/console_capture.py             # 7 repetitions
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
from ml_dash import Experiment
lines, console, root = int(sys.argv[1]), sys.argv[2] == "on", sys.argv[3]
exp = Experiment(namespace="bench", workspace="console", prefix="p", local_root=root, console=console,
                 system_metrics=False, capture_environment=False)
exp.run()
start = time.perf_counter()
for i in range(lines):
    print(f"step {i} loss 0.{i % 997:03d}")
exp.complete()
took = time.perf_counter() - start
print(json.dumps({"took": took, "path": exp.local_path}), file=sys.stderr)
"""


def one(lines: int, console: str, pipe: bool) -> dict:
    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryFile("w+") as out:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        done = subprocess.run([sys.executable, "-c", CHILD, str(lines), console, root], env=env, text=True,
                              stdout=subprocess.PIPE if pipe else out, stderr=subprocess.PIPE, check=True)
        if pipe:
            terminal = done.stdout.count("\n")
        else:
            out.seek(0)
            terminal = sum(1 for _ in out)
        result = json.loads(done.stderr.strip().splitlines()[-1])
        path = os.path.join(result["path"], "console.jsonl")
        stored = 0
        if os.path.exists(path):
            with open(path) as f:
                stored = sum(json.loads(line)["text"].count("\n") for line in f)
        return {"took": result["took"], "terminal": terminal, "stored": stored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    print(f"{args.lines} print() lines, median of {reps} (interleaved); python {sys.version.split()[0]}")
    print(f"{'stdout':8} {'capture':8} {'wall s':>8} {'ratio':>6} {'terminal':>9} {'stored':>8}")
    for pipe in (False, True):
        results: dict[str, list] = {"off": [], "on": []}
        for _ in range(reps):
            for console in ("off", "on"):
                results[console].append(one(args.lines, console, pipe))
        base = statistics.median(r["took"] for r in results["off"])
        for console in ("off", "on"):
            took = statistics.median(r["took"] for r in results[console])
            terminal = min(r["terminal"] for r in results[console])
            stored = min(r["stored"] for r in results[console])
            print(f"{'pipe' if pipe else 'file':8} {console:8} {took:8.3f} {took / base:6.2f} {terminal:9} {stored:8}")


if __name__ == "__main__":
    main()
