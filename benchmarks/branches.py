"""Branches (docs/branches.md): reads of resumed and forked histories against a plain series of the same length.

Straight through the storage API (SQLite in a temp dir, or ``--db`` PostgreSQL), median of ``--repeats``:

- **plain**: one run logging steps 0..N-1 (the baseline);
- **3 resumes**: four runs, each resuming a little before where the last one stopped (the superseded points stay
  stored: about 15% more than N), so every read clips chunks by run;
- **fork**: an experiment forked from *plain* at its last step, logging nothing itself: the bytes it adds to the
  database, and its full history read (all of it the parent's, copy-on-read);
- **chain of 10 forks**: ten experiments each logging N/10 steps and forked from the one before at its last step.

Each read is timed cold (series cache emptied first) and warm, as a full read (every point) and a chart read
(``max_points`` buckets, from block summaries). Goals: 3 resumes ≤ 1.2x plain; fork ≤ 1.2x and ≈ 0 bytes; chain
≤ 1.5x.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from ml_dash.server.series.downsample import series_result
from ml_dash.server.storage.registry import open_storage

BATCH = 50_000


async def log(storage, experiment_id: str, run_id: str | None, stream: str, steps: range, offset: int = 0) -> int:
    """Store ``steps`` (value: a function of the step and the run) in batches; returns the stream's new offset."""
    events = []
    for first in range(steps.start, steps.stop, BATCH):
        last = min(first + BATCH, steps.stop)
        events = [{"timestamp": 1.7e9 + s, "step": s, "metrics": {"loss": 1.0 / (1 + s % 997) + len(stream)}}
                  for s in range(first, last)]
        await storage.apply_batch(experiment_id, run_id, "metrics", stream, offset, offset + len(events), events)
        offset += len(events)
    return offset


async def experiment(storage, prefix: str) -> str:
    return (await storage.create_experiment("bench", "w", "", prefix, None, None))[0]


async def build(storage, n: int) -> dict[str, list[str]]:
    """The experiments; each key lists the experiment ids whose cache entries a cold read must empty."""
    plain = await experiment(storage, "plain")
    run = await storage.create_run(plain, "r0", None, 1.0)
    await log(storage, plain, run, "plain", range(n))

    resumed = await experiment(storage, "resumed")
    stops = [int(n * f) for f in (0.3, 0.55, 0.8, 1.0)]
    start = 0
    for index, stop in enumerate(stops):
        run = await storage.create_run(resumed, f"r{index}", None, 1.0 + index)
        if index:
            start = stops[index - 1] - n // 20  # resume from a checkpoint 5% before the last run stopped
            await storage.set_run_branch(run, start)
        await log(storage, resumed, run, f"resumed{index}", range(start, stop))

    size = database_bytes(storage)
    fork = await experiment(storage, "fork")
    await storage.set_fork(fork, plain, n - 1)
    fork_bytes = database_bytes(storage) - size

    chain, parent = [], None
    for index in range(10):
        link = await experiment(storage, f"chain{index}")
        if parent is not None:
            await storage.set_fork(link, parent, index * (n // 10) - 1)
        run = await storage.create_run(link, "r", None, 1.0)
        await log(storage, link, run, f"chain{index}", range(index * (n // 10), (index + 1) * (n // 10)))
        chain.append(link)
        parent = link
    return {"plain": [plain], "3 resumes": [resumed], "fork": [fork, plain], "chain of 10 forks": chain[::-1],
            "fork bytes": [str(fork_bytes)]}


def database_bytes(storage) -> int:
    path = getattr(storage, "path", None)
    if path is None:
        return 0
    return sum(os.path.getsize(p) for p in (str(path), str(path) + "-wal") if os.path.exists(p))


async def median_ms(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        began = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


async def measure(storage, ids: list[str], n: int, buckets: int, repeats: int) -> dict[str, float]:
    def empty() -> None:
        for experiment_id in ids:
            storage._series_cache.discard((experiment_id, "loss"))

    async def read(max_points: int | None) -> None:
        series = await storage.metric_series(ids[0], "loss", None, None, max_points)
        answer = series_result("loss", series, max_points, nonfinite_as_text=True)
        assert answer["count"] == n, (ids, answer["count"], n)
        if max_points is None:
            assert answer["steps"][:3] == [0, 1, 2] and answer["steps"][-1] == n - 1

    async def full() -> None:
        await read(None)

    async def chart() -> None:
        await read(buckets)

    out = {"full, cold": await median_ms(full, repeats, empty), "chart, cold": await median_ms(chart, repeats, empty)}
    await full()
    out["full, warm"] = await median_ms(full, repeats)
    out["chart, warm"] = await median_ms(chart, repeats)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--buckets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", help="a PostgreSQL URL (an empty database) to measure instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        storage = open_storage(args.db, str(Path(data_dir) / "ml-dash.sqlite3"))
        await storage.open()
        began = time.perf_counter()
        built = await build(storage, args.points)
        print(f"built in {time.perf_counter() - began:.1f} s", flush=True)
        fork_bytes = int(built.pop("fork bytes")[0])
        results = {name: await measure(storage, ids, args.points, args.buckets, args.repeats)
                   for name, ids in built.items()}
        await storage.close()
    goals = {"3 resumes": 1.2, "fork": 1.2, "chain of 10 forks": 1.5}
    print(f"\nbackend: {'PostgreSQL' if args.db else 'SQLite'}; {args.points:,} points; median of {args.repeats}")
    reads = list(results["plain"])
    print(f"\n{'history':<20} " + " ".join(f"{r:>16}" for r in reads) + "   goal")
    for name, times in results.items():
        cells = []
        for what in reads:
            ratio = times[what] / results["plain"][what]
            cells.append(f"{times[what]:7.1f} ms" + ("" if name == "plain" else f" {ratio:4.2f}x"))
        goal = "baseline" if name == "plain" else f"<= {goals[name]}x"
        print(f"{name:<20} " + " ".join(f"{c:>16}" for c in cells) + f"   {goal}")
    print(f"\nbytes the fork added to the database: {fork_bytes:,}"
          + ("" if not args.db else " (not measured on PostgreSQL)"))


if __name__ == "__main__":
    asyncio.run(main())
