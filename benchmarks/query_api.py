"""Query API benchmark: ``ml_dash.Api`` beside the same reads done by hand, against a real server on loopback.

1. **list**: 1,000 experiments (params, last metrics, tags) listed to a pandas DataFrame with
   ``Api(remote).experiments(filter=...).to_pandas()``, beside one raw GraphQL ``experimentPage`` POST (urllib,
   JSON decoded) of the same fields and filter, in the same run.
2. **history**: a 1M-point metric fetched whole with ``record.history()`` (REST, msgpack), beside the same series
   by raw REST GET (JSON) and the most raw GraphQL can carry (``metric(maxPoints: 50000)``, its cap), plus
   ``history(max_points=50000)`` beside that GraphQL read.
3. **gc** (``--gc``): ``ml-dash server gc`` purging soft-deleted experiments holding millions of rows (log rows,
   parameter rows, metric chunks); peak RSS of the gc process and the database size before and after.

Every timing is repeated; the table gives p50, p99, p99.9 and max (with few repeats p99/p99.9 are the max), and the
ratio Api / raw at p50. Data is written straight into the server's database (SQLite, or a fresh PostgreSQL schema
with ``--backends postgresql``) before it starts: fast, and only the reads are timed.

    python benchmarks/query_api.py [--quick] [--experiments 1000] [--points 1000000] [--repeats 10]
                                   [--backends sqlite,postgresql] [--postgres URL]
                                   [--gc | --gc-only] [--gc-rows 3000000]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from ml_dash import Api
from ml_dash.server.config import ServerConfig
from ml_dash.server.storage.registry import open_storage
from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.testing import running_server

from server_ingest import postgres_schema  # this directory is first on sys.path when a benchmark runs

FIELDS = ("id namespace workspace directory prefix status params tags notes deletedAt startedAt completedAt "
          "lastMetrics readme hostname")
FILTER = "params.lr < 0.5 and status = 'completed'"


def quantiles(samples: list[float]) -> dict[str, float]:
    data = np.asarray(samples) * 1000
    return {"p50": float(np.percentile(data, 50)), "p99": float(np.percentile(data, 99)),
            "p99.9": float(np.percentile(data, 99.9)), "max": float(data.max())}


def timed(fn, repeats: int) -> tuple[list[float], object]:
    fn()  # warm: connections, caches, imports
    samples, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - began)
    return samples, result


@contextlib.contextmanager
def database(backend: str, data: str, postgres: str | None):
    """The database URL the server and the populating code share: SQLite in ``data``, or a fresh PostgreSQL schema
    (dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{ServerConfig(data_dir=data).sqlite_path}"
        return
    if not postgres:
        raise SystemExit("--backends postgresql needs --postgres URL (or ML_DASH_TEST_POSTGRES)")
    with postgres_schema(postgres) as url:
        yield url


async def populate(url: str, experiments: int, points: int) -> None:
    storage = open_storage(url, "unused")
    await storage.open()
    try:
        for i in range(experiments):
            experiment_id, _ = await storage.create_experiment("bench", "w", "", f"run-{i:05d}", None, None)
            run_id = await storage.create_run(experiment_id, "c", None, 1.7e9 + i)
            await storage.update_run(run_id, "COMPLETED" if i % 10 else "FAILED", None, 1.7e9 + i + 60)
            await storage.apply_batch(experiment_id, run_id, "parameters", "p", 0, 1, [
                {"timestamp": 1.0, "operation": "set",
                 "data": {"lr": (i % 100) / 100, "batch_size": 32 * (1 + i % 4),
                          "model": {"layers": 10 + i % 50, "name": f"net{i % 7}", "dropout": 0.1}}}])
            await storage.apply_batch(experiment_id, run_id, "metrics", "m", 0, 1, [
                {"timestamp": 1.0, "step": s, "metrics": {"loss": 1 / (s + 1 + i), "acc": s / 10, "lr": 0.1}}
                for s in range(10)])
            if i % 3 == 0:
                await storage.edit_tags(experiment_id, replace=["baseline", f"group-{i % 5}"])
        big, _ = await storage.create_experiment("bench", "w", "", "big", None, None)
        chunk = 100_000
        for k, first in enumerate(range(0, points, chunk)):
            events = [{"timestamp": 1.7e9 + s, "step": s, "metrics": {"loss": float(np.sin(s / 1000))}}
                      for s in range(first, min(points, first + chunk))]
            await storage.apply_batch(big, None, "metrics", "big", k, k + 1, events)
    finally:
        await storage.close()


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read())


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=600) as answer:
        return json.loads(answer.read())


def bench_reads(backend: str, postgres: str | None, experiments: int, points: int,
                repeats: int) -> list[tuple[str, dict, str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ml-dash-query-bench-") as tmp, \
            database(backend, os.path.join(tmp, "data"), postgres) as url:
        data = os.path.join(tmp, "data")
        began = time.perf_counter()
        asyncio.run(populate(url, experiments, points))
        print(f"{backend}: populated {experiments} experiments and a {points:,}-point series in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
        with running_server(data, db=None if backend == "sqlite" else url) as base:
            api = Api(remote=base)
            expected = sum(1 for i in range(experiments) if (i % 100) / 100 < 0.5 and i % 10)
            query = ("query($f: String, $limit: Int) { experimentPage(namespace: \"bench\", filter: $f, limit: $limit)"
                     f" {{ total items {{ {FIELDS} }} }} }}")

            def raw_list():
                return post_json(base + "/graphql", {"query": query, "variables": {"f": FILTER, "limit": 10_000}})

            def api_list():
                return api.experiments(namespace="bench", filter=FILTER).to_pandas()

            raw_samples, raw = timed(raw_list, repeats)
            api_samples, frame = timed(api_list, repeats)
            assert raw["data"]["experimentPage"]["total"] == expected == len(frame), (expected, len(frame))
            rows.append((f"list {expected} experiments: raw GraphQL (JSON)", quantiles(raw_samples), ""))
            rows.append((f"list {expected} experiments: Api -> DataFrame", quantiles(api_samples),
                         f"{np.median(api_samples) / np.median(raw_samples):.2f}x raw"))
            all_samples, _ = timed(lambda: api.experiments(namespace="bench").to_pandas(), repeats)
            rows.append((f"list all {experiments + 1} (no filter): Api -> DataFrame", quantiles(all_samples), ""))
            # What the dashboard's runs table asks: one page, filtered and sorted in the database.
            page = ("{ experimentPage(namespace: \"bench\", filter: \"params.model.layers > 20 and tags contains "
                    "'baseline'\", orderBy: \"metrics.loss asc, params.lr desc\", limit: 50) { total items { id prefix "
                    "params lastMetrics } } }")
            old = "{ experiments(namespace: \"bench\", limit: 50) { id prefix params lastMetrics } }"
            old_samples, _ = timed(lambda: post_json(base + "/graphql", {"query": old}), repeats * 3)
            page_samples, answer = timed(lambda: post_json(base + "/graphql", {"query": page}), repeats * 3)
            assert answer["data"]["experimentPage"]["total"] > 50
            rows.append(("page of 50, unfiltered: GraphQL experiments()", quantiles(old_samples), ""))
            rows.append(("page of 50, filtered + sorted in SQL: experimentPage", quantiles(page_samples),
                         f"{np.median(page_samples) / np.median(old_samples):.2f}x experiments()"))

            [record] = api.experiments(filter="prefix = 'big'")
            url = f"{base}/api/v1/experiments/{record.id}/metrics/loss"
            rest_samples, rest = timed(lambda: get_json(url), max(1, repeats // 2))
            hist_samples, hist = timed(lambda: record.history(keys=["loss"]), max(1, repeats // 2))
            assert len(rest["values"]) == len(hist) == points
            rows.append((f"history {points:,} points: raw REST GET (JSON)", quantiles(rest_samples), ""))
            rows.append((f"history {points:,} points: Api history()", quantiles(hist_samples),
                         f"{np.median(hist_samples) / np.median(rest_samples):.2f}x raw"))
            gql = ("query($id: ID!) { experiment(id: $id) { metric(name: \"loss\", maxPoints: 50000) "
                   "{ count steps values } } }")
            gql_samples, answer = timed(lambda: post_json(base + "/graphql", {"query": gql,
                                                                                 "variables": {"id": record.id}}),
                                        repeats)
            down_samples, down = timed(lambda: record.history(keys=["loss"], max_points=50_000), repeats)
            assert answer["data"]["experiment"]["metric"]["count"] == points
            rows.append(("history 50,000 buckets: raw GraphQL metric()", quantiles(gql_samples), ""))
            rows.append(("history 50,000 buckets: Api history(max_points)", quantiles(down_samples),
                         f"{np.median(down_samples) / np.median(gql_samples):.2f}x raw"))
    return rows


async def populate_gc(path: str, rows: int) -> None:
    """Ten deleted experiments sharing ``rows`` log rows, a tenth as many parameter rows, and metric chunks of
    ``rows`` points; one kept experiment."""
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        keep, _ = await storage.create_experiment("gc", "w", "", "keep", None, None)
        await storage.apply_batch(keep, None, "logs", "l", 0, 1, [
            {"timestamp": 1.0, "level": "INFO", "message": "kept", "context": None}] * 1000)
        per, batch = rows // 10, 50_000
        for e in range(10):
            experiment_id, _ = await storage.create_experiment("gc", "w", "", f"gone-{e}", None, None)
            for k, first in enumerate(range(0, per, batch)):
                n = min(batch, per - first)
                await storage.apply_batch(experiment_id, None, "logs", "l", k, k + 1, [
                    {"timestamp": 1.0 + i, "level": "INFO", "message": f"line {first + i} of a long run",
                     "context": {"step": first + i}} for i in range(n)])
                await storage.apply_batch(experiment_id, None, "parameters", "p", k, k + 1, [
                    {"timestamp": 1.0, "operation": "update", "key": f"k{i % 50}", "value": i} for i in range(n // 10)])
                await storage.apply_batch(experiment_id, None, "metrics", "m", k, k + 1, [
                    {"timestamp": 1.0, "step": first + i, "metrics": {"loss": 0.5, "acc": 0.1}} for i in range(n)])
            await storage.set_deleted(experiment_id, True)
    finally:
        await storage.close()


# The command in-process, then its own peak RSS (KiB) as the last line of stdout. VmHWM, not getrusage's ru_maxrss:
# Linux carries ru_maxrss over from the forking parent across exec, so a child of a big process reports the parent's.
_REPORTING_RSS = ("import sys; from ml_dash.cli import main; code = main(sys.argv[1:]); "
                  "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); sys.exit(code)")


def bench_gc(rows: int) -> list[tuple[str, dict, str]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="ml-dash-gc-bench-") as tmp:
        data = os.path.join(tmp, "data")
        path = ServerConfig(data_dir=data).sqlite_path
        began = time.perf_counter()
        asyncio.run(populate_gc(path, rows))
        size_before = os.path.getsize(path)
        print(f"populated {rows:,} log rows (+ {rows // 10:,} parameter rows, {rows:,} metric points x 2) in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _REPORTING_RSS, "server", "gc", "--data", data],
                              capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - began
        *lines, peak = done.stdout.strip().splitlines()
        summary = lines[-1]
        idle = subprocess.run([sys.executable, "-c", _REPORTING_RSS, "server", "gc", "--data", data],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        out.append((f"gc purge of {rows:,} log rows + chunks", {"p50": seconds * 1000, "p99": seconds * 1000,
                                                                 "p99.9": seconds * 1000, "max": seconds * 1000},
                    f"peak RSS {int(peak) / 1024:.0f} MiB (the same command with nothing left to purge: "
                    f"{int(idle) / 1024:.0f} MiB); DB {size_before / 2**20:.0f} MiB -> "
                    f"{os.path.getsize(path) / 2**20:.0f} MiB (freed pages are reused; VACUUM returns them)"))
        print(summary, file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (seconds)")
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--gc", action="store_true", help="also the gc peak-RSS run")
    parser.add_argument("--gc-rows", type=int, default=3_000_000)
    parser.add_argument("--gc-only", action="store_true", help="only the gc run")
    parser.add_argument("--backends", default="sqlite", help="comma list of sqlite, postgresql (default sqlite)")
    parser.add_argument("--postgres", default=os.environ.get("ML_DASH_TEST_POSTGRES"),
                        help="PostgreSQL URL whose role may create schemas (default: ML_DASH_TEST_POSTGRES)")
    args = parser.parse_args()
    if args.quick:
        args.experiments, args.points, args.repeats, args.gc_rows = 200, 200_000, 3, 200_000
    rows = []
    for backend in ([] if args.gc_only else [b.strip() for b in args.backends.split(",") if b.strip()]):
        if backend not in ("sqlite", "postgresql"):
            raise SystemExit(f"unknown backend {backend!r}")
        rows += [(f"[{backend}] {name}", q, note) for name, q, note in
                 bench_reads(backend, args.postgres, args.experiments, args.points, args.repeats)]
    if args.gc or args.gc_only:
        rows += bench_gc(args.gc_rows)
    print(f"\n{'read':<70}{'p50 ms':>10}{'p99 ms':>10}{'p99.9 ms':>10}{'max ms':>10}  note")
    for name, q, note in rows:
        print(f"{name:<70}{q['p50']:>10.1f}{q['p99']:>10.1f}{q['p99.9']:>10.1f}{q['max']:>10.1f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
