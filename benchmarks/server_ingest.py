"""Server ingest benchmark: a real ``ml-dash server`` subprocess on loopback, SQLite in a temp dir.

Measures (1) metric points/s ingested from N concurrent clients sending msgpack batches on their own streams, with
p50/p99 batch latency, and (2) milliseconds to serve one long series downsampled to a fixed number of buckets, over
REST and GraphQL. Defaults run in well under two minutes; raise the flags to scale up.

    python benchmarks/server_ingest.py [--clients 4] [--batches 50] [--batch-size 5000] [--series-points 1000000]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import aiohttp
import msgpack

from ml_dash.server.testing import running_server

MSGPACK = {"Content-Type": "application/msgpack"}


def metric_batch(stream_id: str, index: int, size: int, name: str) -> bytes:
    first = index * size
    events = [{"timestamp": 1.7e9 + s, "step": s, "metrics": {name: (s % 1000) * 0.001}} for s in range(first, first + size)]
    return msgpack.packb({"run_id": None, "stream": "metrics", "stream_id": stream_id, "start": index,
                          "end": index + 1, "events": events})


async def new_experiment(session: aiohttp.ClientSession, base: str, prefix: str) -> str:
    async with session.post(f"{base}/api/v1/experiments",
                            json={"namespace": "bench", "workspace": "w", "prefix": prefix}) as answer:
        return (await answer.json())["experiment_id"]


async def ingest(base: str, clients: int, batches: int, batch_size: int) -> tuple[float, list[float]]:
    """Concurrent clients, one stream and one metric each; bodies are encoded up front so only the server is timed."""
    async with aiohttp.ClientSession() as session:
        experiment_id = await new_experiment(session, base, "ingest")
    bodies = [[metric_batch(f"client{c}", b, batch_size, f"m{c}") for b in range(batches)] for c in range(clients)]
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


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir, running_server(data_dir) as base:
        elapsed, latencies = await ingest(base, args.clients, args.batches, args.batch_size)
        rest_ms, gql_ms = await serve_series(base, args.series_points, args.buckets, args.repeats)
    points = args.clients * args.batches * args.batch_size
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    rows = [
        ("clients x batches x points/batch", f"{args.clients} x {args.batches} x {args.batch_size}"),
        ("points ingested", f"{points:,}"),
        ("ingest wall time", f"{elapsed:.2f} s"),
        ("ingest rate", f"{points / elapsed:,.0f} points/s"),
        ("batch latency p50 / p99", f"{statistics.median(latencies) * 1000:.1f} / {p99 * 1000:.1f} ms"),
        (f"{args.series_points:,}-point series -> {args.buckets} buckets, REST", f"{rest_ms:.1f} ms (median)"),
        (f"{args.series_points:,}-point series -> {args.buckets} buckets, GraphQL", f"{gql_ms:.1f} ms (median)"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=50, help="batches per client")
    parser.add_argument("--batch-size", type=int, default=5000, help="metric points per batch")
    parser.add_argument("--series-points", type=int, default=1_000_000)
    parser.add_argument("--buckets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
