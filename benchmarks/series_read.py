"""Series read benchmark: milliseconds to read a long metric series and min/max-downsample it for a chart.

Ingests a 1M- and a 10M-point series straight through the storage API (SQLite in a temp dir), then times, median of
``--repeats``: the storage read plus ``series.downsample`` to ``--buckets`` buckets and a zoom to 1% of the steps at full
resolution, each cold (series cache emptied first) and warm (cached, unchanged); the chart read cold from the chunks'
block summaries ("cold, summaries": ``metric_series(max_points=...)``, no point decoded); a live read (10 points appended
before each read, which then decodes only the new tail); and the 1M chart read through the GraphQL endpoint of a real
server subprocess (a fresh process: its first read is cold, later ones warm). Runs in about a minute.

    python benchmarks/series_read.py [--points 1000000 10000000] [--buckets 1000] [--repeats 5] [--db postgresql://...]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from ml_dash.server.series.downsample import series_result
from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.storage.registry import open_storage
from ml_dash.server.testing import running_server

BATCH = 100_000
# The goals of issues 3 and 5, and what the one-row-per-point layout took before (1M points, 1000 buckets).
GOALS = {1_000_000: "≤ 100 ms (was 700-1400 ms)", 10_000_000: "well under 1 s"}


async def ingest(storage: SQLiteStorage, prefix: str, points: int) -> str:
    """One series of ``points`` points in batches of ``BATCH``, with a single spike that every answer must keep.

    The event dicts are built once and re-stepped per batch: building 10M dicts would dominate the run.
    """
    experiment_id, _ = await storage.create_experiment("bench", "w", "", prefix, None, None)
    events = [{"timestamp": 0.0, "step": 0, "metrics": {"loss": 1.0 / (1 + i % 1000)}} for i in range(BATCH)]
    for first in range(0, points, BATCH):
        size = min(BATCH, points - first)
        for i, event in enumerate(events[:size]):
            event["step"], event["timestamp"] = first + i, 1.7e9 + first + i
        spike = points // 2 - first
        if 0 <= spike < size:
            events[spike]["metrics"] = {"loss": 1e3}
        await storage.apply_batch(experiment_id, None, "metrics", "s", first, first + size, events[:size])
        if 0 <= spike < size:
            events[spike]["metrics"] = {"loss": 1.0}
    return experiment_id


async def time_storage(storage: SQLiteStorage, experiment_id: str, points: int, buckets: int,
                       repeats: int) -> dict[str, float]:
    """Cold: the series cache is emptied before each read, so every chunk BLOB is fetched and decoded. Warm: the
    series is cached and nothing changed, so a read is one small query. Live: a 10-point batch is appended before
    each read (not timed), so the read decodes only the new or merged tail chunk."""
    key = (experiment_id, "loss")
    count = points

    async def chart(summaries: bool = True) -> None:
        # With max_points the storage may answer from block summaries (a cold read then decodes no point); without
        # it, every point is decoded and downsampled here (the full path, and what fills the series cache).
        series = await storage.metric_series(experiment_id, "loss", None, None, buckets if summaries else None)
        answer = series_result("loss", series, buckets, nonfinite_as_text=True)
        assert answer["count"] == count and 1e3 in answer["values"] and len(answer["values"]) <= 2 * buckets

    async def zoom() -> None:
        low = points // 2 - points // 200
        series = await storage.metric_series(experiment_id, "loss", low, low + points // 100 - 1)
        answer = series_result("loss", series, None, nonfinite_as_text=True)
        assert answer["count"] == points // 100 and 1e3 in answer["values"]

    def cold(fn):
        async def run() -> None:
            storage._series_cache.discard(key)
            await fn()
        return run

    async def live_append() -> None:
        nonlocal count
        offsets = await storage.stream_offsets(experiment_id)
        events = [{"timestamp": 1.7e9 + count + i, "step": count + i, "metrics": {"loss": 0.5}} for i in range(10)]
        await storage.apply_batch(experiment_id, None, "metrics", "s", offsets["s"], offsets["s"] + 10, events)
        count += 10

    async def full_chart() -> None:
        await chart(summaries=False)

    times = {"storage + downsample, cold": await median_ms(cold(full_chart), repeats),
             "cold, summaries": await median_ms(cold(chart), repeats),
             "zoom 1% (full res), cold": await median_ms(cold(zoom), repeats)}
    await full_chart()  # fill the cache
    times["storage + downsample, warm"] = await median_ms(chart, repeats)
    times["zoom 1% (full res), warm"] = await median_ms(zoom, repeats)
    times["live: +10 points, then read"] = await median_ms(chart, repeats, before=live_append)
    return times


async def median_ms(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            await before()  # not timed
        began = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def time_graphql(base_url: str, experiment_id: str, points: int, buckets: int, repeats: int) -> float:
    body = json.dumps({"query": "query($id: ID!, $n: Int) { experiment(id: $id) { metric(name: \"loss\", maxPoints: $n)"
                                " { count steps values min max } } }",
                       "variables": {"id": experiment_id, "n": buckets}}).encode()
    times = []
    for _ in range(repeats):
        request = urllib.request.Request(base_url + "/graphql", body, {"Content-Type": "application/json"})
        began = time.perf_counter()
        with urllib.request.urlopen(request) as answer:
            metric = json.loads(answer.read())["data"]["experiment"]["metric"]
        times.append(time.perf_counter() - began)
        assert metric["count"] >= points and metric["max"] == 1e3  # live reads appended a few points
    return statistics.median(times) * 1e3


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--buckets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", help="a PostgreSQL URL (an empty database) to measure instead of SQLite")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        # SQLite: the file the server opens below.
        storage = open_storage(args.db, str(Path(data_dir) / "ml-dash.sqlite3"))
        await storage.open()
        ids = {}
        for points in args.points:
            began = time.perf_counter()
            ids[points] = await ingest(storage, f"series-{points}", points)
            print(f"ingested {points:,} points in {time.perf_counter() - began:.1f} s", flush=True)
            for what, ms in (await time_storage(storage, ids[points], points, args.buckets, args.repeats)).items():
                rows.append((f"{points:,}", what, ms, GOALS.get(points, "") if what.startswith("storage") else ""))
        await storage.close()
        with running_server(data_dir, db=args.db) as base_url:
            points = min(args.points)
            ms = time_graphql(base_url, ids[points], points, args.buckets, args.repeats)
            rows.append((f"{points:,}", "HTTP GraphQL metric(maxPoints)", ms, GOALS.get(points, "")))
    print(f"\nbackend: {'PostgreSQL' if args.db else 'SQLite'}")
    print(f"\n{'points':>12}  {'read (' + str(args.buckets) + ' buckets)':<32} {'median ms':>10}  goal")
    for points, what, ms, goal in rows:
        print(f"{points:>12}  {what:<32} {ms:>10.1f}  {goal}")


if __name__ == "__main__":
    asyncio.run(main())
