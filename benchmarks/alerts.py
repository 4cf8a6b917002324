"""Alerts benchmark: a real ``ml-dash server`` subprocess on loopback and a webhook receiver in this process.

(1) NaN to webhook: a batch with a NaN lands (its answer comes back), and the time until the receiver on 127.0.0.1
gets the alert's POST is measured, for ``--alerts`` fresh experiments. Goal: under 5 s.
(2) Ingest with rules: ``--runs`` runs (one experiment each) send ``--batches`` metric batches each from
``--clients`` concurrent clients; once into a namespace no rule covers (the baseline) and once into a namespace with
5 rules (nonfinite, threshold, change, zscore, below) covering every run, on the same server, alternating, best of
``--rounds``. Goal: throughput with rules at least 95% of the baseline.

    python benchmarks/alerts.py [--runs 1000] [--batches 2] [--batch-size 100] [--clients 8] [--rounds 2]
                                [--alerts 20] [--db URL]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time

import aiohttp
import msgpack
from aiohttp import web

from ml_dash.server.testing import running_server

MSGPACK = {"Content-Type": "application/msgpack"}
CREATE = "mutation($r: JSON!) { createAlertRule(rule: $r) { id } }"
RULES = [("nonfinite", {"metric": "*"}), ("threshold", {"metric": "loss", "op": ">", "value": 1e9}),
         ("change", {"metric": "loss", "percent": 1e6, "window": 10}), ("zscore", {"metric": "acc", "z": 50.0}),
         ("below", {"metric": "system/gpu.*.utilization_percent", "value": 10.0, "minutes": 10.0})]


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # experiment id → when its alert arrived
        self.event = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.arrived.setdefault(body["alert"]["experiment_id"], time.perf_counter())
        self.event.set()
        return web.Response()


def batch(run_id: str, index: int, size: int, nan: bool = False) -> bytes:
    first = index * size
    events = [{"timestamp": 1.7e9 + s, "step": s, "metrics": {"loss": 1.0 / (1 + s), "acc": (s % 100) * 0.01,
                                                               "lr": 1e-3, "grad_norm": 0.5 + (s % 7) * 0.1}}
              for s in range(first, first + size)]
    if nan:
        events[-1]["metrics"]["loss"] = float("nan")
    return msgpack.packb({"run_id": run_id, "stream": "metrics", "stream_id": "s", "start": index, "end": index + 1,
                          "events": events})


async def post_json(session: aiohttp.ClientSession, url: str, body: dict) -> dict:
    async with session.post(url, json=body) as answer:
        found = await answer.json()
        if answer.status != 200 or "errors" in found:
            raise RuntimeError(f"{url}: {answer.status} {found}")
        return found


async def make_runs(session, base: str, namespace: str, count: int) -> list[tuple[str, str]]:
    async def one(i: int) -> tuple[str, str]:
        experiment_id = (await post_json(session, f"{base}/api/v1/experiments", {
            "namespace": namespace, "workspace": "w", "directory": f"d{i % 10}", "prefix": f"run{i}"}))["experiment_id"]
        run_id = (await post_json(session, f"{base}/api/v1/experiments/{experiment_id}/runs",
                                  {"client_run_id": "r"}))["run_id"]
        return experiment_id, run_id

    found = []
    for start in range(0, count, 50):
        found += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 50))))
    return found


async def ingest(session, base: str, runs: list[tuple[str, str]], first: int, batches: int, size: int,
                 clients: int) -> float:
    """Seconds to send ``batches`` batches (from index ``first``) of every run, ``clients`` requests at a time."""
    work = [(e, r, first + i) for i in range(batches) for e, r in runs]
    bodies = [(e, batch(r, i, size)) for e, r, i in work]
    queue = list(reversed(bodies))

    async def client() -> None:
        while queue:
            experiment_id, body = queue.pop()
            async with session.post(f"{base}/api/v1/experiments/{experiment_id}/batches", data=body,
                                    headers=MSGPACK) as answer:
                if answer.status != 200:
                    raise RuntimeError(await answer.text())
                await answer.read()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    with tempfile.TemporaryDirectory() as data, \
            running_server(data, db=args.db, args=["--alert-webhook-allow", "127.0.0.1/32"]) as base:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.clients)) as session:
            for kind, params in RULES:
                await post_json(session, f"{base}/graphql", {"query": CREATE, "variables": {"r": {
                    "namespace": "ruled", "kind": kind, "params": params, "webhook": {"url": hook}}}})
            await post_json(session, f"{base}/graphql", {"query": CREATE, "variables": {"r": {
                "namespace": "latency", "kind": "nonfinite", "webhook": {"url": hook}}}})

            # (1) NaN to webhook
            latencies = []
            for experiment_id, run_id in await make_runs(session, base, "latency", args.alerts):
                async with session.post(f"{base}/api/v1/experiments/{experiment_id}/batches",
                                        data=batch(run_id, 0, 10, nan=True), headers=MSGPACK) as answer:
                    await answer.read()
                landed = time.perf_counter()
                while experiment_id not in receiver.arrived:
                    receiver.event.clear()
                    await asyncio.wait_for(receiver.event.wait(), 30)
                latencies.append(receiver.arrived[experiment_id] - landed)
            latencies.sort()
            print(f"NaN to webhook ({args.alerts} alerts): p50 {statistics.median(latencies) * 1000:.1f} ms, "
                  f"max {latencies[-1] * 1000:.1f} ms (goal < 5000 ms)")

            # (2) ingest throughput, with and without rules, alternating on the same server
            plain = await make_runs(session, base, "plain", args.runs)
            ruled = await make_runs(session, base, "ruled", args.runs)
            points = args.runs * args.batches * args.batch_size * 4
            best = {"no rules": 0.0, "5 rules": 0.0}
            for round_ in range(args.rounds):
                for label, runs in (("no rules", plain), ("5 rules", ruled)):
                    seconds = await ingest(session, base, runs, round_ * args.batches, args.batches,
                                           args.batch_size, args.clients)
                    best[label] = max(best[label], points / seconds)
                    print(f"  round {round_ + 1} {label:>8}: {points / seconds:>12,.0f} points/s "
                          f"({args.runs * args.batches / seconds:,.0f} batches/s)", flush=True)
            ratio = best["5 rules"] / best["no rules"]
            print(f"ingest, {args.runs} runs x {args.batches} batches x {args.batch_size} steps x 4 metrics, "
                  f"{args.clients} clients, best of {args.rounds}:")
            print("| case | points/s |\n|---|---:|")
            for label, rate in best.items():
                print(f"| {label} | {rate:,.0f} |")
            print(f"with rules / without: {ratio:.1%} (goal >= 95%)")
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--db", help="postgresql://… (default: SQLite in a temporary directory)")
    sys.exit(asyncio.run(main(parser.parse_args())))
