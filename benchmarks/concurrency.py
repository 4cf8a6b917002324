"""64 runs uploading at once with the ml-dash client, against one default server (SQLite), two workers on
PostgreSQL, and two hosts on PostgreSQL behind a round-robin load balancer, beside each other in one run.

Each configuration starts fresh servers on loopback (``ml_dash.server.testing``). ``--runs`` runs are spread over
``--processes`` client processes (like training processes; each runs its runs on threads): every run logs
``--points`` metric points (``step``, ``loss``), its parameters and a log line every 1 000 steps as fast as it can,
with the client's uploader (a window of batches in flight, ``ML_DASH_UPLOAD_BATCH_EVENTS`` = ``--batch-events``), and
``complete()`` waits for its upload (``ML_DASH_UPLOAD_TIMEOUT`` = 600). Reported per configuration:

- ``upload s``: from the first run's start to the last run's completion, all data acknowledged;
- ``exactly once``: every run's series read back from the server (REST, through the load balancer for the hosts),
  ``points`` counted against what was logged, no step twice, every log line there;
- ``/health p50 / p99 / max``: a probe process asks ``GET /health`` every 20 ms (keep-alive, so connection set-up is
  not timed) of a server (the first host) for as long as the load runs; with the hosts, another one asks through
  the balancer (the test proxy: a Python process on the same cores, not a production load balancer);
- ``server RSS``: peak resident memory (``VmHWM``) of each server process (workers and hosts each count), max and sum;
- ``warnings``: WARNING records the clients' ``ml_dash`` logger emitted, all runs together (a warning storm would
  show here), and ``409``: batches the server refused as out of order (the client's "resumes at server offset"
  record; with the window these must stay near zero on every configuration).

    python benchmarks/concurrency.py [--runs 64] [--processes 8] [--points 20000] [--configs sqlite,workers,hosts]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import urllib.request

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ml_dash.server.testing import RoundRobinProxy, postgres_schema, server_process  # noqa: E402

CONFIGS = {"sqlite": "1 server, SQLite", "workers": "1 server, 2 workers, PostgreSQL",
           "hosts": "2 hosts, PostgreSQL, round-robin proxy"}


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.warnings: collections.Counter = collections.Counter()
        self.conflicts = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings[record.getMessage()[:100]] += 1
        elif "resumes at server offset" in record.msg:
            self.conflicts += 1


def client(remote: str, root: str, indices: list[int], points: int, out) -> None:
    """One client process: its runs on threads, each logging ``points`` points, then completing (upload done)."""
    from ml_dash import Experiment

    counter = _Counter()
    logger = logging.getLogger("ml_dash")
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)  # the uploader's 409 record is a debug one
    ids: dict[int, str] = {}

    def run(index: int) -> None:
        exp = Experiment(namespace="bench", workspace="concurrency", prefix=f"run{index}", remote=remote,
                         local_root=root, system_metrics=False, capture_environment=False)
        with exp.run():
            exp.params.set(index=index, lr=0.001)
            for step in range(points):
                exp.metrics.log(step=step, loss=1.0 / (step + 1))
                if step % 1000 == 0:
                    exp.info(f"step {step}")
        ids[index] = exp.experiment_id

    threads = [threading.Thread(target=run, args=(i,)) for i in indices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.send((ids, dict(counter.warnings), counter.conflicts))


async def _probe(base: str, stop) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            began = time.perf_counter()
            async with session.get(f"{base}/health") as answer:
                assert answer.status == 200
                await answer.read()
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(max(0.0, 0.02 - (time.perf_counter() - began)))
    return latencies


def probe(base: str, stop, out) -> None:
    out.send(asyncio.run(_probe(base, stop)))


def peak_rss_mb(pid: int) -> list[float]:
    """VmHWM of ``pid`` and of its child processes (the workers of ``--workers``), MB."""
    found = []
    try:
        with open(f"/proc/{pid}/status") as status:
            found += [int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")]
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in children.read().split():
                found += peak_rss_mb(int(child))
    except FileNotFoundError:
        pass
    return found


@contextlib.contextmanager
def servers(config: str, data: str, postgres: str | None):
    """The configuration's servers: yields (the URL clients use, the first server's own URL, server pids)."""
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(postgres_schema(postgres)) if config != "sqlite" else None
        if config == "hosts":
            started = [stack.enter_context(server_process(os.path.join(data, f"host{i}"), db=db)) for i in range(2)]
            proxy = stack.enter_context(RoundRobinProxy([url for url, _ in started]))
            yield proxy.url, started[0][0], [process.pid for _, process in started]
        else:
            url, process = stack.enter_context(server_process(data, db=db, workers=2 if config == "workers" else 1))
            yield url, url, [process.pid]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=120) as answer:
        return orjson.loads(answer.read())


def measure(config: str, args: argparse.Namespace) -> dict:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, servers(config, os.path.join(tmp, "server"), args.postgres) as (
            url, direct, pids):
        stop = context.Event()
        probes = []
        for target in dict.fromkeys([direct, url]):  # a server itself, and the balancer when there is one
            probe_out, probe_in = context.Pipe(False)
            prober = context.Process(target=probe, args=(target, stop, probe_in))
            prober.start()
            probes.append((prober, probe_out))
        clients = []
        began = time.perf_counter()
        for p in range(args.processes):
            out, send = context.Pipe(False)
            process = context.Process(target=client, args=(url, os.path.join(tmp, "runs"),
                                                           list(range(p, args.runs, args.processes)), args.points,
                                                           send))
            process.start()
            clients.append((process, out))
        ids, warnings, conflicts = {}, collections.Counter(), 0
        for process, out in clients:
            found, warned, refused = out.recv()
            ids.update(found)
            warnings.update(warned)
            conflicts += refused
            process.join()
        elapsed = time.perf_counter() - began
        stop.set()
        latencies = [probe_out.recv() for _prober, probe_out in probes]
        for prober, _out in probes:
            prober.join()
        rss = [mb for pid in pids for mb in peak_rss_mb(pid)]
        stored, twice, logs_ok = 0, 0, 0
        for experiment_id in ids.values():
            api = f"{url}/api/v1/experiments/{experiment_id}"
            steps = get(f"{api}/metrics/loss")["steps"]
            stored += len(steps)
            twice += len(steps) - len(set(steps))
            logs_ok += len(get(f"{api}/logs?limit=10000")["logs"]) == len(range(0, args.points, 1000))
    return {"elapsed": elapsed, "latencies": latencies[0], "balanced": latencies[1:], "rss": rss, "stored": stored, "twice": twice,
            "runs_ok": len(ids), "logs_ok": logs_ok, "warnings": warnings, "conflicts": conflicts}


def quantiles(latencies: list[float]) -> str:
    ordered = sorted(latencies) or [float("nan")]
    pick = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.99)]
    return " / ".join(f"{v:.1f}" for v in (*pick, ordered[-1] * 1000))


def main(args: argparse.Namespace) -> None:
    os.environ.update({"ML_DASH_UPLOAD_TIMEOUT": "600", "ML_DASH_UPLOAD_BATCH_EVENTS": str(args.batch_events)})
    configs = args.configs.split(",")
    if any(c != "sqlite" for c in configs) and not args.postgres:
        print("skipping the PostgreSQL configurations: pass --postgres URL or set ML_DASH_TEST_POSTGRES",
              file=sys.stderr)
        configs = [c for c in configs if c == "sqlite"]
    rows = []
    for config in configs:
        result = measure(config, args)
        rows.append((config, result))
        print(f"  {config}: done in {result['elapsed']:.1f} s", file=sys.stderr, flush=True)
    expected = args.runs * args.points
    print(f"{args.runs} runs x {args.points:,} points from {args.processes} client processes ({os.cpu_count()} cores, "
          f"batches of at most {args.batch_events:,} events)")
    print("| configuration | upload s | points stored / logged | exactly once | /health p50 / p99 / max ms "
          "| server RSS max / sum MB | warnings | 409 |")
    print("|---|---:|---:|---|---|---|---:|---:|")
    for config, r in rows:
        once = r["stored"] == expected and r["twice"] == 0 and r["runs_ok"] == r["logs_ok"] == args.runs
        print(f"| {CONFIGS[config]} | {r['elapsed']:.1f} | {r['stored']:,} / {expected:,} | "
              f"{'yes' if once else 'NO'} | {quantiles(r['latencies'])}"
              f"{''.join(f' (proxy: {quantiles(b)})' for b in r['balanced'])} | "
              f"{max(r['rss']):.0f} / {sum(r['rss']):.0f} ({len(r['rss'])} proc) | "
              f"{sum(r['warnings'].values())} | {r['conflicts']} |")
    for config, r in rows:
        for message, count in r["warnings"].most_common(3):
            print(f"  {config}: {count} x {message}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--processes", type=int, default=8, help="client processes the runs are spread over")
    parser.add_argument("--points", type=int, default=20_000, help="metric points per run")
    parser.add_argument("--batch-events", type=int, default=2_000, help="ML_DASH_UPLOAD_BATCH_EVENTS")
    parser.add_argument("--configs", default="sqlite,workers,hosts")
    parser.add_argument("--postgres", default=os.environ.get("ML_DASH_TEST_POSTGRES"),
                        help="PostgreSQL URL (default: ML_DASH_TEST_POSTGRES)")
    main(parser.parse_args())
