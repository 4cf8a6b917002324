"""/health latency with no load and under 64 uploading runs, beside each other in one run, SQLite and PostgreSQL.

A real ``ml-dash server`` subprocess on loopback per backend. A probe process asks ``GET /health`` every
``--interval`` seconds (one keep-alive connection, so connection set-up is not timed) for ``--seconds``: first with
nothing else running (the baseline), then while a load process runs ``--runs`` uploading runs, each an experiment
with a run and one metrics stream whose batches are JSONL lines as the ml-dash client sends them (``--points`` points
a batch, one batch after another as fast as the server acknowledges), spread over ``--processes`` processes. The
probe and the load are separate processes, so the probe's own loop is never what is timed. Goal: /health p99 within 500 ms under load.

    python benchmarks/health_under_load.py [--runs 64] [--seconds 20] [--points 200] [--backends sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time

import aiohttp
import msgpack
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_ingest import postgres_available, server  # noqa: E402

MSGPACK = {"Content-Type": "application/msgpack"}


async def _probe(base: str, seconds: float, interval: float) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            began = time.perf_counter()
            async with session.get(f"{base}/health") as answer:
                assert answer.status == 200
                await answer.read()
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - began)))
    return latencies


def probe(base: str, seconds: float, interval: float, out) -> None:
    out.send(asyncio.run(_probe(base, seconds, interval)))


async def _upload(base: str, runs: range, points: int, stop) -> int:
    sent = 0

    async def run(index: int) -> None:
        nonlocal sent
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/v1/experiments", json={"namespace": "bench", "workspace": "load",
                                                                         "prefix": f"run{index}"}) as answer:
                experiment_id = (await answer.json())["experiment_id"]
            async with session.post(f"{base}/api/v1/experiments/{experiment_id}/runs",
                                    json={"client_run_id": f"c{index}"}) as answer:
                run_id = (await answer.json())["run_id"]
            offset, step = 0, 0
            while not stop.is_set():
                lines = b"".join(orjson.dumps({"timestamp": time.time(), "step": s, "metrics": {
                    "loss": 1 / (s + 1), "acc": s % 100 / 100}}) + b"\n" for s in range(step, step + points))
                body = msgpack.packb({"run_id": run_id, "stream": "metrics", "stream_id": f"c{index}:metrics",
                                      "start": offset, "end": offset + len(lines), "lines": lines}, use_bin_type=True)
                async with session.post(f"{base}/api/v1/experiments/{experiment_id}/batches", data=body,
                                        headers=MSGPACK) as answer:
                    assert answer.status == 200, await answer.text()
                offset, step, sent = offset + len(lines), step + points, sent + 1

    await asyncio.gather(*(run(i) for i in runs))
    return sent


def upload(base: str, runs: range, points: int, stop, out) -> None:
    out.send(asyncio.run(_upload(base, runs, points, stop)))


def quantiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    pick = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.99, 0.999)]
    return " / ".join(f"{v:.1f}" for v in (*pick, ordered[-1] * 1000))


def measure(base: str, args: argparse.Namespace) -> tuple[list[float], list[float], int]:
    context = multiprocessing.get_context("spawn")
    baseline_out, baseline_in = context.Pipe(False)
    prober = context.Process(target=probe, args=(base, args.seconds, args.interval, baseline_in))
    prober.start()
    baseline = baseline_out.recv()
    prober.join()
    stop = context.Event()
    loaders = []
    for p in range(args.processes):  # like separate training processes: the clients' CPU competes with the server's
        load_out, load_in = context.Pipe(False)
        loader = context.Process(target=upload, args=(base, range(p, args.runs, args.processes), args.points, stop,
                                                      load_in))
        loader.start()
        loaders.append((loader, load_out))
    time.sleep(args.warmup)  # the runs are created and sending before the probe starts
    loaded_out, loaded_in = context.Pipe(False)
    prober = context.Process(target=probe, args=(base, args.seconds, args.interval, loaded_in))
    prober.start()
    loaded = loaded_out.recv()
    prober.join()
    stop.set()
    batches = 0
    for loader, load_out in loaders:
        batches += load_out.recv()
        loader.join()
    return baseline, loaded, batches


def main(args: argparse.Namespace) -> None:
    backends = args.backends.split(",")
    if "postgresql" in backends and (reason := postgres_available(args.postgres)) is not None:
        print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
        backends.remove("postgresql")
    rows = []
    for backend in backends:
        with server(backend, 1, args.postgres) as base:
            baseline, loaded, batches = measure(base, args)
        rows.append((backend, baseline, loaded, batches))
        print(f"  {backend}: done", file=sys.stderr, flush=True)
    print(f"/health every {args.interval * 1000:.0f} ms for {args.seconds:g} s; load: {args.runs} runs uploading "
          f"{args.points}-point JSONL batches back to back from {args.processes} processes ({os.cpu_count()} cores, 1 "
          "server worker)")
    print("| backend | no load p50 / p99 / p99.9 / max ms | under load p50 / p99 / p99.9 / max ms | batches/s |")
    print("|---|---|---|---|")
    for backend, baseline, loaded, batches in rows:
        print(f"| {backend} | {quantiles(baseline)} | {quantiles(loaded)} | "
              f"{batches / (args.seconds + args.warmup):,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0, help="probing time, each phase")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between two /health requests")
    parser.add_argument("--processes", type=int, default=8, help="load processes the runs are spread over")
    parser.add_argument("--points", type=int, default=200, help="metric points per batch")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before probing")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get("ML_DASH_TEST_POSTGRES"),
                        help="PostgreSQL URL (default: ML_DASH_TEST_POSTGRES)")
    main(parser.parse_args())
