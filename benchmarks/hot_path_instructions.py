"""Instructions per ``exp.metrics.log`` call on the caller, counted by valgrind's callgrind: a noise-free companion
to ``hot_path.py``, whose times move 2-3x with the machine's load.

One interpreter per tree runs, after a warm-up, a loop of ``--calls`` calls for each row below; callgrind counts the
instructions the main thread executes in each loop (``os.getppid()`` and ``os.getpgrp()`` mark a loop's start and
end), and the empty loop's count is taken off each row. The writer thread runs as usual, and its work is not counted.

Rows:

* ``deque.append(dict)``: the floor, as in ``hot_path.py``;
* ``log(loss=float)``, ``log(loss=0-d CPU tensor)`` and ``log(loss=1-element 1-d CPU tensor)``, with ``step=i, acc=0.75, lr=0.001`` as in ``hot_path.py``;
* ``torch reads only``: ``t.is_cpu``, ``t.ndim`` and ``t.tolist()`` alone, the three torch calls a CPU tensor's value
  cannot be read safely without (no device sync, no expansion of a big tensor). ``float + torch reads`` is then the
  least a tensor call could cost if everything else it does (the fresh row the GC does not track) were free.

    python benchmarks/hot_path_instructions.py                       # ~3 minutes (torch's import under valgrind)
    python benchmarks/hot_path_instructions.py --against /tmp/base   # the baseline tree in the same run, in parallel
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import collections, gc, os, sys, tempfile
import torch
from ml_dash import Experiment
n = int(sys.argv[1])
exp = Experiment(namespace="bench", workspace="instr", prefix="run", local_root=tempfile.mkdtemp())
exp.run()
log = exp.metrics.log
q = collections.deque()
t = torch.tensor(0.5)
t1 = torch.tensor([0.5])
gc.collect()

def empty(i): pass
def floor(i): q.append({"step": i, "loss": 0.5, "acc": 0.75, "lr": 0.001})
def log_float(i): log(step=i, loss=0.5, acc=0.75, lr=0.001)
def log_tensor(i): log(step=i, loss=t, acc=0.75, lr=0.001)
def log_tensor1d(i): log(step=i, loss=t1, acc=0.75, lr=0.001)
def reads(i): t.is_cpu and not t.ndim and t.tolist()

for name, call in (("empty", empty), ("floor", floor), ("float", log_float), ("tensor", log_tensor),
                   ("tensor1d", log_tensor1d), ("reads", reads)):
    for i in range(2000):
        call(i)
    exp.flush()
    q.clear()
    os.getppid()  # callgrind: zero the counters
    for i in range(n):
        call(i)
    os.getpgrp()  # callgrind: dump them
    exp.flush()
    q.clear()
    print(name)
exp.complete()
"""

ROWS = [("floor", "deque.append(dict)"), ("float", "log(loss=float)"), ("tensor", "log(loss=0-d CPU tensor)"),
        ("tensor1d", "log(loss=1-element 1-d CPU tensor)"),
        ("reads", "torch reads only (is_cpu, ndim, tolist)")]


def start(tree: str, calls: int, out: str) -> subprocess.Popen:
    """callgrind on one interpreter of ``tree``, dumping each marked loop of the main thread under ``out``."""
    child = os.path.join(out, "child.py")
    with open(child, "w") as f:
        f.write(CHILD)
    env = dict(os.environ, PYTHONPATH=tree, ML_DASH_SYSTEM_METRICS="0", ML_DASH_CAPTURE_ENVIRONMENT="0")
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--zero-before=getppid",
           "--dump-before=getpgrp", f"--callgrind-out-file={out}/cg.%p", sys.executable, child, str(calls)]
    return subprocess.Popen(cmd, env=env, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def counts(proc: subprocess.Popen, calls: int, out: str) -> dict[str, float]:
    """Instructions per call for each loop, the empty loop's taken off."""
    names = proc.communicate()[0].split()
    if proc.returncode != 0 or len(names) != 6:
        sys.exit(f"the callgrind run in {out} failed (exit {proc.returncode})")
    per_call = {}
    for part, name in enumerate(names, 1):
        (path,) = glob.glob(os.path.join(out, f"cg.*.{part}-01"))  # part N, thread 1: the main thread
        with open(path) as f:
            total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
        per_call[name] = total / calls
    empty = per_call.pop("empty")
    return {name: value - empty for name, value in per_call.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000, help="calls counted per row")
    parser.add_argument("--against", metavar="DIR", help="another checkout counted in the same run (baseline)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    trees = [("this", HERE)] + ([("baseline", os.path.abspath(args.against))] if args.against else [])
    work = tempfile.mkdtemp(prefix="ml-dash-instr-")
    runs = []
    for label, tree in trees:
        out = os.path.join(work, label)
        os.makedirs(out)
        runs.append((label, start(tree, args.calls, out), out))
    results = [(label, counts(proc, args.calls, out)) for label, proc, out in runs]
    shutil.rmtree(work, ignore_errors=True)

    print(f"# instructions per call on the caller (callgrind, {args.calls:,} calls per row, empty loop taken off; "
          f"Python {sys.version.split()[0]})\n")
    print("| tree | call | instructions | / float | / floor |")
    print("|---|---|---:|---:|---:|")
    for label, c in results:
        for key, title in ROWS:
            print(f"| {label} | {title} | {c[key]:,.0f} | {c[key] / c['float']:.2f}x | {c[key] / c['floor']:.2f}x |")
        bound = c["float"] + c["reads"]
        print(f"| {label} | float + torch reads (a tensor call's least) | {bound:,.0f} | {bound / c['float']:.2f}x | "
              f"{bound / c['floor']:.2f}x |")
    this = results[0][1]
    print(f"\ngoal: tensor <= 1.5x float: {'met' if this['tensor'] <= 1.5 * this['float'] else 'MISSED'} "
          f"({this['tensor'] / this['float']:.2f}x; the torch reads alone are {this['reads'] / this['float']:.2f}x "
          f"of a float call)")


if __name__ == "__main__":
    main()
