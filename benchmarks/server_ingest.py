"""Server ingest benchmark: real ``ml-dash server`` subprocesses on loopback, SQLite and PostgreSQL, 1/2/4 workers.

Measures, for each backend and worker count, (1) metric points/s ingested from N concurrent clients sending msgpack
batches on their own streams, with p50/p99 batch latency, and (2) per backend (one worker) milliseconds to serve one
long series downsampled to a fixed number of buckets, over REST and GraphQL. PostgreSQL needs a URL whose role may
create schemas (``--postgres`` or ML_DASH_TEST_POSTGRES, as printed by scripts/services.sh); each measurement uses a
fresh schema, dropped afterwards. Without one the PostgreSQL column is skipped with a message. The default run takes
well under three minutes on two cores; raise the flags to scale up.

    python benchmarks/server_ingest.py [--clients 8] [--batches 10] [--batch-size 5000] [--workers 1,2,4] [--body lines]
                                       [--series-points 1000000] [--backends sqlite,postgresql] [--postgres URL]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time

import aiohttp
import msgpack
import orjson

from ml_dash.server.testing import postgres_schema, running_server  # server_ingest.postgres_schema: query_api imports it from here

MSGPACK = {"Content-Type": "application/msgpack"}


def metric_batch(stream_id: str, index: int, size: int, name: str) -> bytes:
    first = index * size
    events = [{"timestamp": 1.7e9 + s, "step": s, "metrics": {name: (s % 1000) * 0.001}} for s in range(first, first + size)]
    return msgpack.packb({"run_id": None, "stream": "metrics", "stream_id": stream_id, "start": index,
                          "end": index + 1, "events": events})


def stream_bodies(stream_id: str, batches: int, size: int, name: str, body: str) -> list[bytes]:
    """A stream's batches: parsed ``events``, or ``lines`` (the JSONL bytes, as the ml-dash client sends; bodies
    over 1 MiB are then decoded in the server's pool) with their byte offsets."""
    if body == "events":
        return [metric_batch(stream_id, index, size, name) for index in range(batches)]
    bodies, offset = [], 0
    for index in range(batches):
        lines = b"".join(orjson.dumps({"timestamp": 1.7e9 + s, "step": s, "metrics": {name: (s % 1000) * 0.001}})
                         + b"\n" for s in range(index * size, (index + 1) * size))
        bodies.append(msgpack.packb({"run_id": None, "stream": "metrics", "stream_id": stream_id, "start": offset,
                                     "end": offset + len(lines), "lines": lines}, use_bin_type=True))
        offset += len(lines)
    return bodies


async def new_experiment(session: aiohttp.ClientSession, base: str, prefix: str) -> str:
    async with session.post(f"{base}/api/v1/experiments",
                            json={"namespace": "bench", "workspace": "w", "prefix": prefix}) as answer:
        return (await answer.json())["experiment_id"]


async def ingest(base: str, clients: int, batches: int, batch_size: int,
                 body: str = "events") -> tuple[float, list[float]]:
    """Concurrent clients, one stream and one metric each; bodies are encoded up front so only the server is timed."""
    async with aiohttp.ClientSession() as session:
        experiment_id = await new_experiment(session, base, "ingest")
    bodies = [stream_bodies(f"client{c}", batches, batch_size, f"m{c}", body) for c in range(clients)]
    latencies: list[float] = []

    async def client(c: int) -> None:
        async with aiohttp.ClientSession() as session:
            for body in bodies[c]:
                began = time.perf_counter()
                async with session.post(f"{base}/api/v1/experiments/{experiment_id}/batches", data=body,
                                        headers=MSGPACK) as answer:
                    assert answer.status == 200, await answer.text()
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return time.perf_counter() - began, latencies


async def serve_series(base: str, points: int, buckets: int, repeats: int) -> tuple[float, float]:
    """Load one series of ``points`` points, then time its downsampled read (median of ``repeats``) via REST and GraphQL."""
    chunk = 50_000
    async with aiohttp.ClientSession() as session:
        experiment_id = await new_experiment(session, base, "series")
        for index in range(0, (points + chunk - 1) // chunk):
            body = metric_batch("series", index, min(chunk, points - index * chunk), "loss")
            async with session.post(f"{base}/api/v1/experiments/{experiment_id}/batches", data=body,
                                    headers=MSGPACK) as answer:
                assert answer.status == 200, await answer.text()
        query = {"query": "query($id: ID!, $n: Int) { experiment(id: $id) { metric(name: \"loss\", maxPoints: $n) "
                          "{ count steps values } } }", "variables": {"id": experiment_id, "n": buckets}}
        rest, gql = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            async with session.get(f"{base}/api/v1/experiments/{experiment_id}/metrics/loss",
                                   params={"max_points": buckets}) as answer:
                assert (await answer.json())["count"] == points
            rest.append(time.perf_counter() - began)
            began = time.perf_counter()
            async with session.post(f"{base}/graphql", json=query) as answer:
                assert (await answer.json())["data"]["experiment"]["metric"]["count"] == points
            gql.append(time.perf_counter() - began)
    return statistics.median(rest) * 1000, statistics.median(gql) * 1000


@contextlib.contextmanager
def server(backend: str, workers: int, postgres_url: str | None):
    """``python -m ml_dash.server --workers N`` on a free loopback port over a fresh database; yields its base URL."""
    with tempfile.TemporaryDirectory() as data_dir, contextlib.ExitStack() as stack:
        db = stack.enter_context(postgres_schema(postgres_url)) if backend == "postgresql" else None
        yield stack.enter_context(running_server(data_dir, workers=workers, db=db))


def postgres_available(url: str | None) -> str | None:
    """None when PostgreSQL can be used, else why not."""
    if not url:
        return "no PostgreSQL URL (pass --postgres or set ML_DASH_TEST_POSTGRES; see scripts/services.sh)"
    try:
        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(url, timeout=5)
            await conn.close()

        asyncio.run(probe())
    except Exception as exc:  # any reason at all: report it and go on with SQLite
        return f"cannot connect to {url}: {exc}"
    return None


def main(args: argparse.Namespace) -> None:
    backends = args.backends.split(",")
    if "postgresql" in backends:
        reason = postgres_available(args.postgres)
        if reason is not None:
            print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
            backends.remove("postgresql")
    workers = [int(w) for w in args.workers.split(",")]
    points = args.clients * args.batches * args.batch_size
    ingest_rows, series_rows = {}, {}
    for backend in backends:
        for n in workers:
            with server(backend, n, args.postgres) as base:
                elapsed, latencies = asyncio.run(ingest(base, args.clients, args.batches, args.batch_size, args.body))
            latencies.sort()
            p99, p999 = (latencies[min(len(latencies) - 1, int(q * len(latencies)))] for q in (0.99, 0.999))
            ingest_rows[backend, n] = (points / elapsed, statistics.median(latencies) * 1000, p99 * 1000,
                                       p999 * 1000, latencies[-1] * 1000)
            print(f"  {backend}, {n} worker(s): {points / elapsed:,.0f} points/s", file=sys.stderr, flush=True)
        if args.series_points:
            with server(backend, 1, args.postgres) as base:
                series_rows[backend] = asyncio.run(serve_series(base, args.series_points, args.buckets, args.repeats))
    print(f"ingest: {args.clients} clients x {args.batches} batches x {args.batch_size} points "
          f"= {points:,} points per cell (msgpack {args.body}, one stream and metric per client, keep-alive "
          "connections)")
    header = "| workers | " + " | ".join(f"{b} points/s | {b} p50 / p99 / p99.9 / max batch ms" for b in backends) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(backends)))
    for n in workers:
        cells = []
        for backend in backends:
            rate, p50, p99, p999, worst = ingest_rows[backend, n]
            cells += [f"{rate:,.0f}", f"{p50:.1f} / {p99:.1f} / {p999:.1f} / {worst:.1f}"]
        print(f"| {n} | " + " | ".join(cells) + " |")
    if series_rows:
        print(f"\n{args.series_points:,}-point series -> {args.buckets} buckets (median of {args.repeats}, 1 worker)")
        print("| backend | REST ms | GraphQL ms |\n|---|---|---|")
        for backend, (rest_ms, gql_ms) in series_rows.items():
            print(f"| {backend} | {rest_ms:.1f} | {gql_ms:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batches", type=int, default=10, help="batches per client")
    parser.add_argument("--batch-size", type=int, default=5000, help="metric points per batch")
    parser.add_argument("--body", choices=("events", "lines"), default="events",
                        help="batches as parsed events, or as JSONL lines like the ml-dash client")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get("ML_DASH_TEST_POSTGRES"),
                        help="PostgreSQL URL (default: ML_DASH_TEST_POSTGRES)")
    parser.add_argument("--series-points", type=int, default=1_000_000, help="0 skips the series read")
    parser.add_argument("--buckets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    main(parser.parse_args())
