"""Scale benchmark: a server filled through the real protocol, then what its size and its reads cost.

For each backend (SQLite, PostgreSQL) and chunk format (``zstd``, the default; ``raw``, the layout before
compression, via ``ML_DASH_CHUNK_CODEC``), in the same run:

1. **bytes per point by series kind**: a fresh server gets ``--size-points`` points of one kind only (``random``:
   uniform float64 noise; ``smooth``: a slowly moving float32 loss; both with steps +1 and ``time.time()``-like
   stamps ~4 ms apart: ``chunk_codecs.make_series``), and the whole database (SQLite: the file after a checkpoint;
   PostgreSQL: every table of the schema with its indexes and TOAST) is divided by the points;
2. **the scale run**: ``--points`` points in all: one experiment with a single series of ``--series-points`` points,
   and ``--runs`` experiments (one run each, in one workspace) sharing the rest, three metrics per event (``noise``
   random, ``loss`` smooth, ``lr`` a cosine schedule), sent by ``--uploaders`` concurrent uploaders as the client's
   uploader sends them: msgpack bodies of JSONL lines of ``--batch`` events. Reported: bytes per point, ingest rate
   over the first and the last tenth of the points, the big series' chart (GraphQL ``metric(maxPoints: 1000)``,
   first and repeated) and full read (REST, msgpack), one ``experimentPage`` of the 10,000-run workspace (total
   and 100 items), and ``ml-dash server gc`` of a quarter of the experiments (deleted first) with its peak RSS.

``python benchmarks/scale.py [--points 10000000] [--series-points 10000000] [--runs 10000] [--uploaders 4]
[--batch 2000] [--size-points 1000000] [--backends sqlite,postgresql] [--formats zstd,raw] [--postgres URL]``.
PostgreSQL needs a URL whose role may create schemas (``--postgres`` or ML_DASH_TEST_POSTGRES); each server gets
a fresh schema, dropped afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Iterator

import aiohttp
import msgpack
import numpy as np
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chunk_codecs import make_series  # noqa: E402

from ml_dash.server.testing import free_port, postgres_schema  # noqa: E402

MSGPACK = {"Content-Type": "application/msgpack"}


@contextlib.contextmanager
def database(backend: str, postgres: str | None) -> Iterator[tuple[str, str]]:
    """(data directory, database URL) of a fresh database."""
    with tempfile.TemporaryDirectory() as data, contextlib.ExitStack() as stack:
        db = stack.enter_context(postgres_schema(postgres)) if backend == "postgresql" else \
            f"sqlite:///{data}/ml-dash.sqlite3"
        yield data, db


@contextlib.contextmanager
def server(data: str, db: str, codec: str) -> Iterator[str]:
    """``python -m ml_dash.server`` writing chunks in ``codec`` (ml_dash.server.testing drops ML_DASH_* variables,
    so the process is started here)."""
    port = free_port("127.0.0.1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env["ML_DASH_CHUNK_CODEC"] = codec
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "ml_dash.server", "--port", str(port), "--data", data,
                                "--db", db], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited: {log.read().decode(errors='replace')}")
            try:
                import urllib.request

                urllib.request.urlopen(f"{base}/health", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def database_bytes(db: str, vacuum_full: bool = False) -> int:
    """The database's size on disk with its indexes; ``vacuum_full``: after giving back the free space (the space
    that merged tails left: SQLite reuses it at once, PostgreSQL after a vacuum, and only VACUUM FULL returns it)."""
    if db.startswith("sqlite:///"):
        path = db[len("sqlite:///"):]
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if vacuum_full:
            conn.execute("VACUUM")
        conn.close()
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    import asyncpg

    async def size() -> int:
        conn = await asyncpg.connect(db)
        try:
            # VACUUM: settle the visibility and free space maps, as autovacuum would on a live server
            await conn.execute("VACUUM FULL ANALYZE" if vacuum_full else "VACUUM ANALYZE")
            return int(await conn.fetchval(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"))
        finally:
            await conn.close()
    return asyncio.run(size())


# --- the protocol, as the uploader speaks it ---

async def new_experiment(session: aiohttp.ClientSession, base: str, workspace: str, prefix: str) -> tuple[str, str]:
    async with session.post(f"{base}/api/v1/experiments", json={"namespace": "bench", "workspace": workspace,
                                                                "prefix": prefix}) as answer:
        experiment_id = (await answer.json())["experiment_id"]
    async with session.post(f"{base}/api/v1/experiments/{experiment_id}/runs",
                            json={"client_run_id": "run-1", "started_at": time.time()}) as answer:
        assert answer.status in (200, 201), await answer.text()
        run_id = (await answer.json())["run_id"]
    return experiment_id, run_id


def bodies(run_id: str, kinds: dict[str, str], points: int, batch: int, seed: int) -> Iterator[tuple[bytes, int]]:
    """The run's metric stream as upload bodies (msgpack of JSONL lines, byte offsets), each with its point count."""
    offset = 0
    columns = {name: make_series(kind, points, seed=seed + i) for i, (name, kind) in enumerate(kinds.items())}
    steps, _, stamps = next(iter(columns.values()))
    for lo in range(0, points, batch):
        hi = min(points, lo + batch)
        lines = b"".join(orjson.dumps({"timestamp": float(stamps[i]), "step": int(steps[i]),
                                       "metrics": {name: float(c[1][i]) for name, c in columns.items()}}) + b"\n"
                         for i in range(lo, hi))
        yield msgpack.packb({"run_id": run_id, "stream": "metrics", "stream_id": "c1:metrics", "start": offset,
                             "end": offset + len(lines), "lines": lines}, use_bin_type=True), (hi - lo) * len(kinds)
        offset += len(lines)


async def post(session: aiohttp.ClientSession, base: str, experiment_id: str, body: bytes) -> None:
    async with session.post(f"{base}/api/v1/experiments/{experiment_id}/batches", data=body,
                            headers=MSGPACK) as answer:
        assert answer.status == 200, await answer.text()


async def upload(base: str, jobs: list[tuple[str, str, dict, int, int]], uploaders: int, batch: int,
                 log: list[tuple[float, int]]) -> None:
    """``jobs`` (experiment, run, metric kinds, events, seed) shared by ``uploaders`` concurrent uploaders; each
    finished batch goes into ``log`` as (time, points)."""
    queue = list(reversed(jobs))

    async def uploader() -> None:
        async with aiohttp.ClientSession() as session:
            while queue:
                experiment_id, run_id, kinds, events, seed = queue.pop()
                for body, count in bodies(run_id, kinds, events, batch, seed):
                    await post(session, base, experiment_id, body)
                    log.append((time.perf_counter(), count))

    await asyncio.gather(*(uploader() for _ in range(uploaders)))


def rates(log: list[tuple[float, int], ...], began: float) -> tuple[float, float, float]:
    """(overall, first tenth, last tenth) points per second."""
    total = sum(c for _, c in log)
    times = np.array([t for t, _ in log])
    done = np.cumsum([c for _, c in log])
    tenth = total / 10
    first_end = times[np.searchsorted(done, tenth)]
    last_start = times[np.searchsorted(done, total - tenth)]
    return total / (times[-1] - began), tenth / (first_end - began), tenth / (times[-1] - last_start)


async def graphql(session: aiohttp.ClientSession, base: str, query: str, variables: dict) -> dict:
    async with session.post(f"{base}/graphql", json={"query": query, "variables": variables}) as answer:
        found = await answer.json()
        assert "errors" not in found, found
        return found["data"]


async def timed(coroutine) -> tuple[float, object]:
    began = time.perf_counter()
    result = await coroutine
    return time.perf_counter() - began, result


CHART = ("query($id: ID!, $n: Int) { experiment(id: $id) { metric(name: \"loss\", maxPoints: $n) "
         "{ count steps values } } }")
PAGE = ("query($ws: String) { experimentPage(namespace: \"bench\", workspace: $ws, orderBy: \"metrics.loss asc\", "
        "limit: 100) { total items { id prefix status } } }")
DELETE = "mutation($id: ID!) { deleteExperiment(id: $id) { id } }"


def size_per_point(backend: str, codec: str, kind: str, points: int, args) -> tuple[float, float]:
    with database(backend, args.postgres) as (data, db):
        with server(data, db, codec) as base:
            async def fill() -> None:
                async with aiohttp.ClientSession() as session:
                    experiment_id, run_id = await new_experiment(session, base, "size", kind)
                await upload(base, [(experiment_id, run_id, {"m": kind}, points, 1)], 1, args.batch, [])
            asyncio.run(fill())
        return database_bytes(db) / points, database_bytes(db, vacuum_full=True) / points


def scale_run(backend: str, codec: str, args) -> dict:
    out: dict = {}
    kinds = {"noise": "random", "loss": "smooth", "lr": "lr"}
    series_events = args.series_points
    run_events = max(1, (args.points - series_events) // (3 * args.runs))
    total_points = series_events + 3 * run_events * args.runs
    with database(backend, args.postgres) as (data, db):
        with server(data, db, codec) as base:
            async def fill() -> tuple[str, list[str]]:
                async with aiohttp.ClientSession() as session:
                    big = await new_experiment(session, base, "big", "series")
                    runs = [await new_experiment(session, base, "runs", f"run-{i:05d}") for i in range(args.runs)]
                jobs = [(big[0], big[1], {"loss": "smooth"}, series_events, 7)]
                jobs += [(e, r, kinds, run_events, 100 + 3 * i) for i, (e, r) in enumerate(runs)]
                log: list[tuple[float, int]] = []
                began = time.perf_counter()
                await upload(base, jobs, args.uploaders, args.batch, log)
                out["ingest_s"] = time.perf_counter() - began
                out["rate"], out["rate_first"], out["rate_last"] = rates(log, began)
                return big[0], [e for e, _ in runs]

            big, runs = asyncio.run(fill())
            out["points"] = total_points
            out["bytes_per_point"] = database_bytes(db) / total_points

            async def reads() -> None:
                async with aiohttp.ClientSession() as session:
                    charts = [await timed(graphql(session, base, CHART, {"id": big, "n": 1000})) for _ in range(3)]
                    assert charts[0][1]["experiment"]["metric"]["count"] == series_events
                    out["chart_first_ms"], out["chart_again_ms"] = charts[0][0] * 1e3, charts[-1][0] * 1e3
                    fulls = []
                    for _ in range(2):
                        began = time.perf_counter()
                        async with session.get(f"{base}/api/v1/experiments/{big}/metrics/loss",
                                               headers={"Accept": "application/msgpack"}) as answer:
                            found = msgpack.unpackb(await answer.read())
                        fulls.append(time.perf_counter() - began)
                        assert len(found["steps"]) == series_events
                    out["full_first_s"], out["full_again_s"] = fulls
                    pages = [await timed(graphql(session, base, PAGE, {"ws": "runs"})) for _ in range(3)]
                    assert pages[0][1]["experimentPage"]["total"] == args.runs
                    out["page_ms"] = statistics.median(t for t, _ in pages) * 1e3
                    for experiment_id in runs[: len(runs) // 4]:
                        await graphql(session, base, DELETE, {"id": experiment_id})
            asyncio.run(reads())
        # gc with the server stopped (it may keep running; stopped, the measurement is gc's alone)
        began = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "ml_dash.server", "gc", "--data", data, "--db", db],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        output = process.stdout.read().decode(errors="replace")
        process.stdout.close()
        process.returncode = os.waitstatus_to_exitcode(status)
        assert process.returncode == 0, output
        out["gc_s"] = time.perf_counter() - began
        out["gc_rss_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
        out["bytes_per_point_after_gc"] = database_bytes(db) / total_points
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--series-points", type=int, default=None, help="default: half of --points, at most 10M")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2000, help="events per upload body")
    parser.add_argument("--size-points", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--formats", default="zstd,raw")
    parser.add_argument("--postgres", default=os.environ.get("ML_DASH_TEST_POSTGRES"))
    args = parser.parse_args()
    if args.series_points is None:
        args.series_points = min(10_000_000, args.points // 2)
    for name in ("points", "runs", "uploaders", "batch", "size_points", "series_points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not args.postgres:
        print("PostgreSQL skipped: no --postgres URL (or ML_DASH_TEST_POSTGRES)", file=sys.stderr)
        backends.remove("postgresql")
    formats = [f for f in args.formats.split(",") if f]
    print(f"# bytes per point by series kind ({args.size_points:,} points of one metric per database)\n")
    print("| backend | format | random | smooth | random, VACUUM FULL | smooth, VACUUM FULL |\n"
          "|---|---|---:|---:|---:|---:|")
    for backend in backends:
        for codec in formats:
            sizes = [size_per_point(backend, codec, kind, args.size_points, args) for kind in ("random", "smooth")]
            print(f"| {backend} | {codec} | {sizes[0][0]:.2f} | {sizes[1][0]:.2f} | {sizes[0][1]:.2f} | "
                  f"{sizes[1][1]:.2f} |", flush=True)
    print(f"\n# scale run: {args.points:,} points asked, {args.runs:,} runs x 3 metrics + one "
          f"{args.series_points:,}-point series, {args.uploaders} uploaders, {args.batch:,} events per body\n")
    columns = [("points", "points", "{:,}"), ("B/pt", "bytes_per_point", "{:.2f}"),
               ("ingest pts/s", "rate", "{:,.0f}"), ("first 10%", "rate_first", "{:,.0f}"),
               ("last 10%", "rate_last", "{:,.0f}"), ("chart ms (1st/again)", "chart", "{}"),
               ("full read s (1st/again)", "full", "{}"), ("page ms", "page_ms", "{:.1f}"),
               ("gc s", "gc_s", "{:.1f}"), ("gc peak RSS MB", "gc_rss_mb", "{:.0f}"),
               ("B/pt after gc", "bytes_per_point_after_gc", "{:.2f}")]
    print("| backend | format | " + " | ".join(c[0] for c in columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for backend in backends:
        for codec in formats:
            r = scale_run(backend, codec, args)
            r["chart"] = f"{r['chart_first_ms']:.0f} / {r['chart_again_ms']:.0f}"
            r["full"] = f"{r['full_first_s']:.2f} / {r['full_again_s']:.2f}"
            cells = [fmt.format(r[key]) for _, key, fmt in columns]
            print(f"| {backend} | {codec} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
