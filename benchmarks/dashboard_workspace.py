"""Workspace benchmark (run by ``dashboard_draw.py --part workspace``, or alone): a workspace of 10,000 experiments
opens in about the time one of 100 does, and overlaying 1,000 runs' ``loss`` is one batched request.

Seeds through the storage API (SQLite in a temp dir): workspaces ``runs-<n>`` of ``n`` experiments (three parameters,
``loss`` and ``acc`` over 10 steps) and ``overlay-<n>`` of ``n`` runs with a 1,000-step ``loss`` (one run with a spike).
A real server (``running_server``) and headless Debian Chromium (Playwright). In ms from navigation start:

- open: ``#/ws/bench/runs-<n>`` until the runs table shows its first rows and its count; ``page`` is the server's time
  to first byte for the table's ``experimentPage`` read; ``rows`` how many rows are in the DOM;
- overlay: ``#/ws/bench/overlay-<n>?view=charts`` until the ``loss`` chart is drawn; ``requests`` counts the
  seriesBatch requests for it (one), ``server`` is its time to first byte, ``answer`` its size; checks the spike.

Cold is a fresh browser context on a fresh server; warm is the median of ``--reloads`` reloads.
"""
from __future__ import annotations

import asyncio
import math
import statistics
import time
from pathlib import Path

from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.testing import running_server

OVERLAY_STEPS = 1000
SPIKE = 77.0

TABLE_READY = """() => {
  const row = document.querySelector('#runs-table tbody tr[data-experiment]');
  const count = document.querySelector('#runs-count');
  if (!row || !count || !count.textContent) return false;
  window.__ready = window.__ready || performance.now();
  return true;
}"""
OVERLAY_READY = """() => {
  const chart = document.querySelector('.overlay-chart[data-metric="loss"][data-state=ready]');
  if (!chart) return false;
  window.__ready = window.__ready || performance.now();
  return true;
}"""


async def seed(data_dir: str, table_sizes: list[int], overlay_sizes: list[int]) -> None:
    storage = SQLiteStorage(str(Path(data_dir) / "ml-dash.sqlite3"))
    await storage.open()
    try:
        for n in table_sizes:
            for i in range(n):
                experiment_id, _ = await storage.create_experiment("bench", f"runs-{n}", f"d{i % 10}", f"run-{i:05d}", None, "h")
                await storage.apply_batch(experiment_id, None, "parameters", "p", 0, 1, [
                    {"timestamp": 1.7e9, "operation": "set", "data": {"lr": 10 ** -(1 + i % 4), "seed": i, "opt": ["sgd", "adam"][i % 2]}}])
                await storage.apply_batch(experiment_id, None, "metrics", "m", 0, 1, [
                    {"timestamp": 1.7e9 + s, "step": s, "metrics": {"loss": 1 / (s + 1 + i % 7), "acc": s / 10}} for s in range(10)])
        for n in overlay_sizes:
            for i in range(n):
                experiment_id, _ = await storage.create_experiment("bench", f"overlay-{n}", "", f"run-{i:05d}", None, "h")
                await storage.apply_batch(experiment_id, None, "parameters", "p", 0, 1, [
                    {"timestamp": 1.7e9, "operation": "set", "data": {"lr": 10 ** -(1 + i % 4), "seed": i}}])
                rate = 0.002 + 0.004 * (i % 10) / 10
                events = [{"timestamp": 1.7e9 + s, "step": s, "metrics": {"loss": 2 * math.exp(-rate * s) + 0.01 * ((i * s) % 7)}}
                          for s in range(OVERLAY_STEPS)]
                if i == n // 2:
                    events[OVERLAY_STEPS // 3]["metrics"] = {"loss": SPIKE}
                await storage.apply_batch(experiment_id, None, "metrics", "m", 0, 1, events)
    finally:
        await storage.close()


def _load(page, url: str, reload: bool, predicate: str, operation: str, requests: list) -> dict:
    requests.clear()
    if reload:
        page.reload(wait_until="commit")
    else:
        page.goto(url, wait_until="commit")
    page.wait_for_function(predicate, polling="raf", timeout=120_000)
    ready = page.evaluate("window.__ready")
    origin = page.evaluate("performance.timeOrigin")
    page.wait_for_timeout(50)  # let requestfinished events of the answers drawn arrive
    mine = [r for r in requests if f"query {operation}" in (r.post_data or "")]
    assert mine, f"no {operation} request"
    first = mine[0]
    timeline = []  # every GraphQL request of the load: operation, sent → answer's last byte (ms from navigation start)
    for r in requests:
        name = (r.post_data or "").split("query ", 1)[-1].split("(", 1)[0].split("{", 1)[0].strip()[:12] or "?"
        timeline.append(f"{name} {r.timing['startTime'] - origin:.0f}→{r.timing['startTime'] - origin + r.timing['responseEnd']:.0f}")
    return {"timeline": timeline, "answered": first.timing["startTime"] - origin + first.timing["responseEnd"],
            "encoding": first.response().headers.get("content-encoding", "-"),"ready": ready, "requests": len(mine), "sent": first.timing["startTime"] - origin,
            "server": first.timing["responseStart"] - first.timing["requestStart"], "bytes": len(first.response().body()),
            "rows": page.evaluate("document.querySelectorAll('#runs-table tbody tr[data-experiment]').length"),
            "max": page.evaluate("(document.querySelector('.overlay-chart[data-metric=\"loss\"]') || {dataset: {}}).dataset.max || ''")}


def measure(data_dir: str, cases: list[tuple[str, str, str, str]], reloads: int, viewport) -> dict:
    """cases: (label, hash, ready predicate, GraphQL operation name) → {label: (cold, warm)}."""
    from playwright import sync_api

    from dashboard_draw import CHROMIUM, CHROMIUM_ARGS

    results = {}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for label, address, predicate, operation in cases:
            with running_server(data_dir) as base_url:  # fresh server: cold caches for each case
                context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                requests: list = []
                page.on("requestfinished", lambda r: requests.append(r) if r.url.endswith("/graphql") else None)
                url = f"{base_url}/{address}"
                cold = _load(page, url, False, predicate, operation, requests)
                warm_runs = [_load(page, url, True, predicate, operation, requests) for _ in range(reloads)]
                warm = {k: statistics.median(r[k] for r in warm_runs) if k not in ("max", "timeline", "encoding")
                        else warm_runs[-1][k] for k in cold}
                context.close()
                assert not errors, f"{label}: uncaught errors in the page: {errors}"
                results[label] = (cold, warm)
        browser.close()
    return results


def run(table_sizes: list[int], overlay_sizes: list[int], reloads: int, viewport) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as data_dir:
        began = time.perf_counter()
        asyncio.run(seed(data_dir, table_sizes, overlay_sizes))
        print(f"seeded {sum(table_sizes) + sum(overlay_sizes):,} experiments in {time.perf_counter() - began:.1f} s", flush=True)
        cases = [(f"open {n:,}", f"#/ws/bench/runs-{n}", TABLE_READY, "Page") for n in table_sizes]
        cases += [(f"overlay {n:,}", f"#/ws/bench/overlay-{n}?view=charts", OVERLAY_READY, "Overlay") for n in overlay_sizes]
        results = measure(data_dir, cases, reloads, viewport)
    print(f"\nworkspace views, ms from navigation start (warm = median of {reloads} reloads); ratio = cold ready "
          f"against the first case of its kind")
    print(f"{'case':>14} {'load':>4} {'sent':>6} {'server':>7} {'answer':>9} {'enc':>4} {'answered':>8} {'ready':>7} "
          f"{'ratio':>6} {'requests':>8} {'rows':>5}")
    base = {}
    for label, (cold, warm) in results.items():
        kind = label.split()[0]
        base.setdefault(kind, cold["ready"])
        for load, row in (("cold", cold), ("warm", warm)):
            ratio = row["ready"] / base[kind] if load == "cold" else float("nan")
            print(f"{label:>14} {load:>4} {row['sent']:6.0f} {row['server']:7.0f} {row['bytes'] / 1024:7.1f}kB "
                  f"{row['encoding']:>4} {row['answered']:8.0f} {row['ready']:7.0f} {ratio:6.2f} {row['requests']:8.0f} "
                  f"{row['rows']:5.0f}")
        if kind == "overlay":
            assert float(cold["max"]) == SPIKE and cold["requests"] == 1, (label, cold)
    print("\nGraphQL requests of each cold load (operation sent→answered, ms from navigation start):")
    for label, (cold, _) in results.items():
        print(f"{label:>14}: {', '.join(cold['timeline'])}")
    print("\noverlay: one seriesBatch request per chart, drawn max == the spike: ok")
