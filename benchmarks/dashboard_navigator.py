"""Navigator benchmark: a server of 100,000 experiments opens and moves between pages within 1.5× of a small server.

Two data directories, seeded through the storage API (SQLite): "small" holds ``bench/small`` and ``bench/other``
(100 runs each, three parameters, a 10-step ``loss``); "big" holds the same plus ``bench/many``: ``--big``
experiments in 100 directories. Each is served by a real server (``running_server``) and read by headless Debian
Chromium (Playwright), the two servers one after the other in the same run. In ms:

- first: a fresh page at ``#/ws/bench/small`` until the runs table shows its rows and the navigator its top level;
  ``page sent`` is when the table's experimentPage request left (ms from navigation start);
- move: from ``#/ws/bench/<from>`` (``many`` on the big server, ``other`` on the small one) to ``#/ws/bench/small``
  by a hash change, until its table shows its rows; median of ``--moves`` moves;
- the navigator's own reads: how many GraphQL requests it made, and the largest answer's size.

    python benchmarks/dashboard_navigator.py [--big 100000] [--moves 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.testing import running_server

SMALL = 100
READY = """(count) => {
  const rows = document.querySelectorAll('#runs-table tbody tr[data-experiment]').length;
  const label = document.querySelector('#runs-count');
  const nav = document.querySelector("#nav-tree li[data-key='ns:bench']");
  if (!rows || !nav || !label || !label.textContent.endsWith(`of ${count} experiments`)) return false;
  window.__ready = window.__ready || performance.now();
  return true;
}"""


async def seed(data_dir: Path, big: int) -> None:
    storage = SQLiteStorage(str(data_dir / "ml-dash.sqlite3"))
    await storage.open()
    try:
        for workspace in ("small", "other"):
            for i in range(SMALL):
                experiment_id, _ = await storage.create_experiment("bench", workspace, f"d{i % 5}", f"run-{i:03d}", None, "h")
                await storage.apply_batch(experiment_id, None, "parameters", "p", 0, 1, [
                    {"timestamp": 1.7e9, "operation": "set", "data": {"lr": 10 ** -(1 + i % 4), "seed": i}}])
                await storage.apply_batch(experiment_id, None, "metrics", "m", 0, 1, [
                    {"timestamp": 1.7e9 + s, "step": s, "metrics": {"loss": 1 / (s + 1 + i % 7)}} for s in range(10)])
        for i in range(big):
            await storage.create_experiment("bench", "many", f"sweep-{i % 100:02d}", f"run-{i:06d}", None, "h")
    finally:
        await storage.close()


def measure(browser, base_url: str, origin_ws: str, origin_count: int, moves: int) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    finished: list = []
    page.on("requestfinished", lambda r: finished.append(r) if r.url.endswith("/graphql") else None)
    page.goto(f"{base_url}/#/ws/bench/small", wait_until="commit")
    page.wait_for_function(READY, arg=SMALL, polling="raf", timeout=120_000)
    first = page.evaluate("window.__ready")
    origin = page.evaluate("performance.timeOrigin")
    page.wait_for_timeout(100)
    sent = min((r.timing["startTime"] - origin for r in finished if "query Page" in (r.post_data or "")), default=float("nan"))
    nav = [r for r in finished if "query Nav" in (r.post_data or "") or "experiments(" in (r.post_data or "")]
    nav_bytes = max((len(r.response().body()) for r in nav), default=0)
    times = []
    for _ in range(moves):
        page.evaluate(f"() => {{ location.hash = '#/ws/bench/{origin_ws}'; }}")
        page.wait_for_function(READY, arg=origin_count, polling="raf", timeout=120_000)
        page.wait_for_timeout(50)
        began = page.evaluate("() => { window.__ready = 0; const t = performance.now(); location.hash = '#/ws/bench/small'; return t; }")
        page.wait_for_function(READY, arg=SMALL, polling="raf", timeout=120_000)
        times.append(page.evaluate("window.__ready") - began)
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    return {"first": first, "sent": sent, "move": statistics.median(times), "nav": len(nav), "nav_bytes": nav_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100_000, help="experiments of the big workspace")
    parser.add_argument("--moves", type=int, default=5)
    args = parser.parse_args()
    from playwright import sync_api

    from dashboard_draw import CHROMIUM, CHROMIUM_ARGS

    with tempfile.TemporaryDirectory() as small_dir, tempfile.TemporaryDirectory() as big_dir:
        began = time.perf_counter()
        asyncio.run(seed(Path(small_dir), 0))
        asyncio.run(seed(Path(big_dir), args.big))
        print(f"seeded {2 * SMALL:,} + {2 * SMALL + args.big:,} experiments in {time.perf_counter() - began:.1f} s",
              flush=True)
        results = {}
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            with running_server(small_dir) as base_url:  # warm-up: the browser's own first start is not measured
                measure(browser, base_url, "other", SMALL, 1)
            for label, data_dir, origin_ws, count in (("small", small_dir, "other", SMALL),
                                                      (f"big {args.big:,}", big_dir, "many", args.big)):
                with running_server(data_dir) as base_url:
                    results[label] = measure(browser, base_url, origin_ws, count, args.moves)
            browser.close()
    print(f"\nnavigator, ms (move = median of {args.moves} hash changes to #/ws/bench/small); ratio against small")
    print(f"{'server':>14} {'first':>7} {'ratio':>6} {'page sent':>9} {'move':>7} {'ratio':>6} {'nav reads':>9} {'largest':>9}")
    base = results["small"]
    for label, row in results.items():
        print(f"{label:>14} {row['first']:7.0f} {row['first'] / base['first']:6.2f} {row['sent']:9.0f} {row['move']:7.0f} "
              f"{row['move'] / base['move']:6.2f} {row['nav']:9d} {row['nav_bytes'] / 1024:7.1f}kB")


if __name__ == "__main__":
    main()
