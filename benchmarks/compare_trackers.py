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

# Layout (a comment, not the docstring: the docstring is --help): this file is the driver (arguments, the
# subprocesses, aggregation, tables and chart); each tracker is an adapter in trackers/<tracker>.py behind
# trackers/base.py's Tracker; what runs inside the worker and read-back processes (the timed loop, CPU/RSS sampling,
# the GPU-sync counter) is trackers/harness.py. The children are this script again (--worker/--readback), so they
# find trackers/ the way it does.

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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# run as a script, benchmarks/ is sys.path[0] already; imported (or run with -m) it may not be
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from trackers import ORDER, TRACKERS, harness

REFERENCE = "mldash"  # the tracker the ratios divide by


# ----------------------------------------------------------------------------------------------------------------
# Orchestrator.
# ----------------------------------------------------------------------------------------------------------------

def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _version_dists() -> list[str]:
    """The report's Versions line, in this order: the trackers' distributions, torch (the tensor pass; TensorBoard's
    writer), the floors', then matplotlib (the chart) and psutil (the child-process sampler)."""
    ts = TRACKERS.values()
    dists = ([t.dist for t in ts if t.dist and not t.baseline] + ["torch"]
             + [t.dist for t in ts if t.dist and t.baseline] + ["matplotlib", "psutil"])
    return list(dict.fromkeys(dists))


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
        if TRACKERS[name].in_memory:
            res["readback"]["stored"] = res.get("stored_in_memory")
    return res


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
        ok, why = TRACKERS[n].available()
        if ok:
            run.append(n)
        else:
            skipped[n] = why
            print(f"skip {TRACKERS[n].label}: {why}", flush=True)

    root = args.workdir or tempfile.mkdtemp(prefix="compare-trackers-")
    results: dict[str, list[dict]] = {n: [] for n in run}
    errors: dict[str, str] = {}
    t_all = time.perf_counter()
    load_start = os.getloadavg()
    for rep in range(args.reps):
        order = run[rep % len(run):] + run[:rep % len(run)] if run else []
        for n in order:
            out = os.path.join(root, f"rep{rep}", n)
            r = _run_one(n, TRACKERS[n].steps(args), out, "timing", args)
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
            check = "n/a" if TRACKERS[n].in_memory else "unchecked"
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
            name=n, label=TRACKERS[n].label, call=TRACKERS[n].call, reps=len(rs), steps=rs[0]["steps"],
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
    base = next((r for r in rows if r["name"] == REFERENCE), None)

    versions = {d: _version(d) for d in _version_dists()}
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
    if base is None and REFERENCE in names:
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
             "inside the logging calls, per step; on a GPU each one waits for the device. Every tensor reports "
             "`is_cpu` False in this pass, so a tracker that reads CPU tensors inline takes its GPU path.\n")
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
            L.append(f"- {TRACKERS[n].label}: {why}")
        L.append("")
    if errors:
        L.append("Errors:\n")
        for n, e in errors.items():
            L.append(f"- {TRACKERS[n].label}: {e}")
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
        harness.worker(args)
        return 0
    if args.readback:
        print(json.dumps(harness.readback(args.readback, args.out)))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
