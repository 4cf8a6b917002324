"""Dashboard draw benchmark: how long the experiment page takes to draw a 100k-, 1M- and 10M-point series.

Seeds one experiment with three metrics (``points_100k``, ``points_1M``, ``points_10M``, each with a single spike)
straight through the storage API (SQLite in a temp dir, no HTTP), starts a real server on it with ``running_server``,
opens ``#/exp/<id>`` in headless Debian Chromium (Playwright, ``/usr/bin/chromium``) and reports per chart, all in ms
from the page's navigation start (``performance.timeOrigin``):

- request: when the chart's GraphQL ``metric(maxPoints)`` request left, and its server time (time to first byte,
  from the request's network timing: server read + downsample + JSON, plus any wait behind the other charts' reads,
  since the page asks for all three at once) and answer size;
- render: the synchronous part of that chart's ``Plotly.react`` call (wrapped by an init script);
- scripts: DOMContentLoaded, i.e. when the page's blocking scripts (plotly.min.js, js/main.js and its modules) have run;
- drawn: the first animation frame at which the chart's SVG trace (``.scatterlayer .trace path.js-line``) exists,
  and req→drawn, the same from the moment the chart's request left;

cold (fresh server, empty series cache, fresh browser context: plotly.min.js downloaded and compiled), warm (median
of ``--reloads`` reloads) and new (the same browser opening the page again after the server restarted on the same
port: browser caches warm, server caches empty — a returning user opening a run nobody has looked at). Then the
same GraphQL query per series alone, against a fresh server (cold, first read) and again (warm), to separate the
server's share from queueing. Checks that every drawn trace's maximum is the spike. About a minute on 2 cores.

    python benchmarks/dashboard_draw.py [--reloads 3] [--part series|workspace|all]

``--part workspace`` (dashboard_workspace.py) opens a workspace of 10,000 experiments beside one of 100, and
overlays 1,000 runs' loss beside 100 runs' (``--tables``, ``--overlays`` change the sizes; ``--quick``: 100/2,000
and 100/300).
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

from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.testing import free_port, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERIES = {"points_100k": 100_000, "points_1M": 1_000_000, "points_10M": 10_000_000}
SPIKE = {"points_100k": 50.0, "points_1M": 500.0, "points_10M": 5000.0}
BATCH = 100_000

# Records Plotly.react calls per chart (window.Plotly is set by plotly.min.js's UMD wrapper, which hits the setter).
INIT_SCRIPT = """
window.__bench = { react: {}, drawn: {} };
(() => {
  let plotly;
  Object.defineProperty(window, "Plotly", { configurable: true, get() { return plotly; }, set(value) {
    plotly = value;
    const react = value.react;
    value.react = function (gd, ...rest) {
      const began = performance.now();
      const result = react.call(this, gd, ...rest);
      const metric = gd.dataset && gd.dataset.metric;
      if (metric && !window.__bench.react[metric]) window.__bench.react[metric] = [began, performance.now()];
      return result;
    };
  } });
})();
"""

# Polled once per animation frame by wait_for_function: notes when each chart's trace first exists.
DRAWN_PREDICATE = """(names) => {
  for (const name of names) {
    if (window.__bench.drawn[name]) continue;
    const div = document.querySelector(`.chart[data-metric="${name}"]`);
    const path = div && div.dataset.state === "ready" && div.querySelector(".scatterlayer .trace path.js-line");
    if (path && (path.getAttribute("d") || "").length > 20) window.__bench.drawn[name] = performance.now();
  }
  return names.every((name) => window.__bench.drawn[name]);
}"""

CHECK_TRACES = """(names) => Object.fromEntries(names.map((name) => {
  const div = document.querySelector(`.chart[data-metric="${name}"]`);
  const y = div.data[0].y.filter((v) => v !== null);
  return [name, { max: Math.max(...y), points: y.length, count: Number(div.dataset.count),
                  yTop: div._fullLayout.yaxis.range[1], traces: div.querySelectorAll(".scatterlayer .trace").length }];
}))"""


async def seed(data_dir: str) -> str:
    """One experiment, three series in batches of ``BATCH`` events (dicts built once per series, re-stepped)."""
    storage = SQLiteStorage(str(Path(data_dir) / "ml-dash.sqlite3"))  # the file the server opens
    await storage.open()
    try:
        experiment_id, _ = await storage.create_experiment("bench", "dashboard", "", "draw", "Draw benchmark.", "bench")
        run_id = await storage.create_run(experiment_id, "bench-run", "bench", 1.7e9)
        offset = 0
        for name, points in SERIES.items():
            events = [{"timestamp": 0.0, "step": 0, "metrics": {name: 1.0 / (1 + i % 1000)}} for i in range(BATCH)]
            spike_step = points // 2 + 7
            for first in range(0, points, BATCH):
                size = min(BATCH, points - first)
                for i, event in enumerate(events[:size]):
                    event["step"], event["timestamp"] = first + i, 1.7e9 + (first + i) * 0.01
                spike = spike_step - first
                if 0 <= spike < size:
                    events[spike]["metrics"] = {name: SPIKE[name]}
                await storage.apply_batch(experiment_id, run_id, "metrics", "bench:metrics", offset, offset + size,
                                          events[:size])
                offset += size
                if 0 <= spike < size:
                    events[spike]["metrics"] = {name: 1.0}
        await storage.update_run(run_id, "COMPLETED", None, 1.7e9 + 1e5)
        return experiment_id
    finally:
        await storage.close()


def load_page(page, url: str, reload: bool, series_requests: list) -> dict:
    """Navigate (or reload), wait until every chart's trace is drawn, return per-chart numbers in ms."""
    series_requests.clear()
    if reload:
        page.reload(wait_until="commit")
    else:
        page.goto(url, wait_until="commit")
    names = list(SERIES)
    page.wait_for_function(DRAWN_PREDICATE, arg=names, polling="raf", timeout=60_000)
    bench = page.evaluate("({ origin: performance.timeOrigin, react: window.__bench.react, drawn: window.__bench.drawn,"
                          " ready: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd })")
    checks = page.evaluate(CHECK_TRACES, names)
    by_metric = {}
    for request in series_requests:
        variables = (request.post_data_json or {}).get("variables", {})
        if variables.get("m0") in SERIES:
            by_metric[variables["m0"]] = request
    result = {}
    for name in names:
        check = checks[name]
        assert check["traces"] == 1, (name, check)
        assert check["max"] == SPIKE[name], f"{name}: drawn max {check['max']} is not the spike {SPIKE[name]}"
        assert check["yTop"] >= SPIKE[name] and check["count"] == SERIES[name], (name, check)
        request = by_metric[name]
        timing = request.timing
        sent = timing["startTime"] - bench["origin"]
        response = request.response()
        react = bench["react"][name]
        result[name] = {
            "sent": sent,
            "server": timing["responseStart"] - timing["requestStart"],
            "received": sent + timing["responseEnd"],
            "bytes": len(response.body()),
            "render": react[1] - react[0],
            "react_start": react[0],
            "drawn": bench["drawn"][name],
            "req_to_drawn": bench["drawn"][name] - sent,
            "scripts": bench["ready"],
            "drawn_points": check["points"],
        }
    return result


def graphql_alone(base_url: str, experiment_id: str, name: str, max_points: int) -> float:
    body = json.dumps({"query": "query($id: ID!, $m: String!, $n: Int) { experiment(id: $id) { metric(name: $m, "
                                "maxPoints: $n) { count steps values min max } } }",
                       "variables": {"id": experiment_id, "m": name, "n": max_points}}).encode()
    request = urllib.request.Request(base_url + "/graphql", body, {"Content-Type": "application/json"})
    began = time.perf_counter()
    with urllib.request.urlopen(request) as answer:
        metric = json.loads(answer.read())["data"]["experiment"]["metric"]
    elapsed = (time.perf_counter() - began) * 1e3
    assert metric["max"] == SPIKE[name] and metric["count"] == SERIES[name]
    return elapsed


def chart_bundles(wanted: list[str]) -> dict[str, Path]:
    """The plotly.js bundles to compare: ``basic`` (fetched by `ml-dash server fetch-chart-library`) and ``full`` (the
    plotly package's); one that is not installed is skipped with a note."""
    from ml_dash.server.http.dashboard import BASIC_BUNDLE, full_plotly_js_path

    found = {"basic": BASIC_BUNDLE if BASIC_BUNDLE.is_file() else None, "full": full_plotly_js_path()}
    bundles = {}
    for label in wanted:
        if found.get(label) is None:
            print(f"skipping the {label} bundle: not installed (`ml-dash server fetch-chart-library` fetches the basic one)")
        else:
            bundles[label] = found[label]
    if not bundles:
        raise SystemExit("no plotly.js bundle to measure")
    return bundles


def load_pages(data_dir: str, experiment_id: str, chart_js: Path, args) -> tuple[dict, list, dict, int]:
    """Cold load, warm reloads and a returning visit on a restarted server, all serving ``chart_js``."""
    from playwright import sync_api

    port = free_port("127.0.0.1")
    server_args = ["--chart-js", str(chart_js)]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": args.viewport[0], "height": args.viewport[1]})
        context.add_init_script(INIT_SCRIPT)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        series_requests: list = []
        page.on("requestfinished", lambda request: series_requests.append(request)
                if request.url.endswith("/graphql") and request.method == "POST" else None)
        with running_server(data_dir, port=port, args=server_args) as base_url:
            url = f"{base_url}/#/exp/{experiment_id}"
            cold = load_page(page, url, False, series_requests)
            warm_runs = [load_page(page, url, True, series_requests) for _ in range(args.reloads)]
            max_points = page.evaluate("document.querySelector('.chart').clientWidth")
        # A returning visitor opening a series the server has not read since it started: the browser keeps
        # plotly.js and its compiled code, the server's caches are empty (same port, so the same origin).
        page.goto("about:blank")
        with running_server(data_dir, port=port, args=server_args) as base_url:
            revisit = load_page(page, url, False, series_requests)
        browser.close()
        assert not errors, f"uncaught errors in the page: {errors}"
    return cold, warm_runs, revisit, max_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=3, help="warm reloads (median reported)")
    parser.add_argument("--bundles", nargs="+", default=["basic", "full"], choices=["basic", "full"],
                        help="plotly.js bundles to measure, each with a fresh browser and servers")
    parser.add_argument("--viewport", type=int, nargs=2, default=[1400, 900], metavar=("W", "H"))
    parser.add_argument("--part", choices=["series", "workspace", "all"], default="all")
    parser.add_argument("--tables", type=int, nargs="+", default=[100, 10_000], help="workspace sizes to open")
    parser.add_argument("--overlays", type=int, nargs="+", default=[100, 1000], help="runs to overlay in one chart")
    parser.add_argument("--quick", action="store_true", help="smaller workspace cases (100/2,000 and 100/300)")
    args = parser.parse_args()
    if args.part != "series":
        from dashboard_workspace import run

        if args.quick:
            args.tables, args.overlays = [100, 2000], [100, 300]
        run(args.tables, args.overlays, args.reloads, args.viewport)
        if args.part == "workspace":
            return

    with tempfile.TemporaryDirectory() as data_dir:
        began = time.perf_counter()
        experiment_id = asyncio.run(seed(data_dir))
        print(f"seeded {sum(SERIES.values()):,} points in {time.perf_counter() - began:.1f} s", flush=True)

        bundles = chart_bundles(args.bundles)
        results = {}
        for label, path in bundles.items():  # each bundle in a fresh browser and fresh servers
            results[label] = load_pages(data_dir, experiment_id, path, args)
        max_points = next(iter(results.values()))[3]

        alone = {}
        for name in SERIES:  # a fresh server per series: its first read is cold, the next ones warm
            with running_server(data_dir) as base_url:
                first = graphql_alone(base_url, experiment_id, name, max_points)
                warm = statistics.median(graphql_alone(base_url, experiment_id, name, max_points) for _ in range(3))
                alone[name] = (first, warm)

    for label, (cold, warm_runs, revisit, max_points) in results.items():
        warm = {name: {key: statistics.median(run[name][key] for run in warm_runs) for key in cold[name]}
                for name in SERIES}
        path = bundles[label]
        print(f"\nchart library: {label} ({path.name}, {path.stat().st_size / 1e6:.1f} MB); experiment page, "
              f"{args.viewport[0]}x{args.viewport[1]} viewport, charts {max_points} px wide (maxPoints); ms from "
              f"navigation start; warm = median of {args.reloads} reloads")
        header = (f"{'series':>7} {'load':>4} {'scripts':>7} {'sent':>6} {'server':>7} {'answer':>9} {'received':>9}"
                  f" {'render':>7} {'drawn':>7} {'req→drawn':>9} {'drawn pts':>9}")
        print(header)
        for name, points in SERIES.items():
            for load, row in (("cold", cold[name]), ("warm", warm[name]), ("new", revisit[name])):
                print(f"{name.split('_')[1]:>7} {load:>4} {row['scripts']:7.0f} {row['sent']:6.0f} {row['server']:7.0f} "
                      f"{row['bytes'] / 1024:7.1f}kB {row['received']:9.0f} {row['render']:7.0f} {row['drawn']:7.0f}"
                      f" {row['req_to_drawn']:9.0f} {row['drawn_points']:9.0f}")
    print("\nsame GraphQL query alone (urllib, fresh server per series), ms: first read (cold) / warm")
    for name in SERIES:
        print(f"{name.split('_')[1]:>7} {alone[name][0]:7.0f} / {alone[name][1]:.0f}")
    print("\ndrawn trace max == spike for every series and load: ok")


if __name__ == "__main__":
    main()
