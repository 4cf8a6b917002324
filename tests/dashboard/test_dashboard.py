"""The dashboard in a real headless Chromium against a real ml-dash server on 127.0.0.1.

Waits are Playwright waits on selectors or page functions; charts mark themselves ``data-state="ready"`` and count
their renders in ``data-renders`` so a test can wait for "drawn again" without sleeping.
"""
from __future__ import annotations

import gzip
import os
import posixpath
import re
import urllib.error
import urllib.request

import pytest

# Skipped here, not in conftest.py, where pytest would report a module-level skip as an error.
if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from dashboard_seed import Server, seed_big_series, seed_demo  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402

BIG_POINTS = 1_000_000
SPIKE_STEP = 654_321
SPIKE_VALUE = 50.0

# Max of a Plotly graph div's first trace, and its number of points, read from the data Plotly actually drew.
TRACE_STATS = """(selector) => {
  const graph = document.querySelector(selector);
  const y = graph.data[0].y.filter((v) => v !== null);
  return { points: graph.data[0].y.length, max: Math.max(...y), traces: graph.data.length,
           xs: graph.data[0].x, count: Number(graph.dataset.count.split(",")[0]) };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("dashboard-server")) as base_url:
        client = Server(base_url)
        seeded = seed_demo(client)
        seeded["big"] = seed_big_series(client, BIG_POINTS, SPIKE_STEP, SPIKE_VALUE)
        yield base_url, client, seeded


def wait_for_charts(page, count: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('.chart[data-state=ready]').length === {count}")


def test_index_and_assets_are_served(server):
    base_url, _, _ = server
    with urllib.request.urlopen(base_url + "/") as answer:
        index = answer.read().decode()
    assert '<main id="main">' in index
    for path in ("/static/js/main.js", "/static/app.css", "/static/vendor/plotly.min.js"):
        with urllib.request.urlopen(base_url + path) as answer:
            assert answer.status == 200 and len(answer.read()) > 500, path


def test_index_preloads_every_module_of_the_app(server):
    """index.html lists each ES module for modulepreload (so they download in parallel, not one import level per
    round trip); that list must be exactly the modules main.js imports, directly or not."""
    base_url, _, _ = server
    with urllib.request.urlopen(base_url + "/") as answer:
        index = answer.read().decode()
    assert '<script type="module" src="/static/js/main.js"></script>' in index
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', index))
    imported, queue = set(), ["/static/js/main.js"]
    while queue:
        path = queue.pop()
        if path in imported:
            continue
        imported.add(path)
        with urllib.request.urlopen(base_url + path) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/javascript"), path
            source = answer.read().decode()
        assert source.startswith("// "), f"{path} should open with a one-line comment saying what it holds"
        queue += [posixpath.normpath(posixpath.join(posixpath.dirname(path), name))
                  for name in re.findall(r'from "(\.{1,2}/[\w./]+)";$', source, re.M)]
    assert preloaded == imported


def fetch(url: str, **headers: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:  # urllib raises for a 304
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("path", ["/", "/static/js/main.js", "/static/js/charts.js", "/static/app.css", "/static/vendor/plotly.min.js"])
def test_static_assets_are_gzipped_and_revalidate_to_304(server, path):
    base_url, _, _ = server
    status, plain_headers, plain = fetch(base_url + path)
    assert status == 200 and "Content-Encoding" not in plain_headers
    assert plain_headers["Vary"] == "Accept-Encoding" and plain_headers["Cache-Control"]

    status, headers, body = fetch(base_url + path, **{"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == plain and len(body) < len(plain)
    assert headers["ETag"] != plain_headers["ETag"]  # one validator per representation
    assert headers["Cache-Control"] == plain_headers["Cache-Control"]

    status, _, _ = fetch(base_url + path, **{"Accept-Encoding": "gzip", "If-None-Match": headers["ETag"]})
    assert status == 304
    status, _, _ = fetch(base_url + path, **{"If-None-Match": plain_headers["ETag"]})
    assert status == 304
    status, _, again = fetch(base_url + path, **{"Accept-Encoding": "gzip;q=0", "If-None-Match": headers["ETag"]})
    assert status == 200 and again == plain
    if path.endswith("plotly.min.js"):
        assert "max-age" in headers["Cache-Control"]
    else:  # fixed URLs: a new release must show on the next load
        assert headers["Cache-Control"] == "no-cache"


def test_charts_draw_with_the_full_plotly_bundle_too(tmp_path, page):
    """A server told to serve the plotly package's full plotly.min.js draws the same charts as with the basic bundle."""
    from ml_dash.server.http.dashboard import full_plotly_js_path

    full = full_plotly_js_path()
    with running_server(tmp_path / "full-bundle", args=["--chart-js", str(full)]) as base_url:
        client = Server(base_url)
        seeded = seed_demo(client, steps=30)
        status, _, body = fetch(base_url + "/static/vendor/plotly.min.js")
        assert status == 200 and body == full.read_bytes()
        page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")
        wait_for_charts(page, 5)
        assert page.locator(".chart .scatterlayer .trace path.js-line").count() == 5


def test_static_paths_outside_the_static_folder_are_not_served(server):
    base_url, _, _ = server
    for path in ("/static/../_dashboard.py", "/static/%2e%2e/_dashboard.py", "/static/nope.js"):
        assert fetch(base_url + path)[0] == 404, path


def hold(page, url_glob: str, predicate=lambda request: True) -> list:
    """Routes matching requests into a list instead of answering them; the test continues them later."""
    held: list = []
    page.route(url_glob, lambda route: held.append(route) if predicate(route.request) else route.continue_())
    return held


def wait_until(page, condition, what: str) -> None:
    """Let the page run (its network events are dispatched meanwhile) until ``condition()`` holds."""
    for _ in range(400):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def is_series_request(request) -> bool:
    return request.method == "POST" and "query Series" in (request.post_data or "")


def test_data_requests_and_page_do_not_wait_for_plotly(server, page):
    """plotly.min.js held back by the test: the page still asks for its data and renders everything but the charts."""
    base_url, _, seeded = server
    held_plotly = hold(page, "**/static/vendor/plotly.min.js")
    sent: list[str] = []
    page.on("request", lambda request: sent.append("series" if is_series_request(request) else request.url))
    page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")

    wait_until(page, lambda: sent.count("series") == 5, "the five charts' series requests")
    assert held_plotly, "plotly was never requested"
    page.wait_for_selector("#exp-header h1:has-text('resnet-lr0.01')")
    page.wait_for_selector("#parameters tr[data-key='model.layers']")
    page.wait_for_selector("#log-lines .log-line[data-level=INFO]")
    page.wait_for_selector("#nav-tree a[data-experiment]", state="attached")
    # Everything above happened while plotly.min.js was still unanswered.
    assert page.evaluate("typeof window.Plotly") == "undefined"
    assert page.locator(".chart[data-state=ready]").count() == 0

    for route in held_plotly:
        route.continue_()
    wait_for_charts(page, 5)
    assert page.locator(".chart .scatterlayer .trace").count() == 5


def test_charts_of_a_page_request_their_series_in_parallel(server, page):
    """No series answer is given until every chart has asked: one-after-another requests would never get there."""
    base_url, _, seeded = server
    held = hold(page, "**/graphql", is_series_request)
    page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")
    wait_until(page, lambda: len(held) == 5, "five series requests in flight at once")
    assert page.locator(".chart[data-state=ready]").count() == 0
    for route in held:
        route.continue_()
    wait_for_charts(page, 5)


def test_experiment_page_draws_one_chart_per_metric(server, page):
    base_url, _, seeded = server
    page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")
    wait_for_charts(page, 5)  # lr, train.acc, train.loss, val.acc, val.loss
    groups = page.eval_on_selector_all(".metric-group", "gs => gs.map(g => [g.dataset.group, "
                                       "[...g.querySelectorAll('.chart')].map(c => c.dataset.metric)])")
    assert groups == [["", ["lr"]], ["train", ["train.acc", "train.loss"]], ["val", ["val.acc", "val.loss"]]]
    for chart in page.query_selector_all(".chart"):
        # Plotly draws each trace as an SVG path; one trace per chart, with a non-empty path.
        traces = chart.query_selector_all(".scatterlayer .trace")
        assert len(traces) == 1
        assert len(traces[0].query_selector("path.js-line").get_attribute("d")) > 20
    assert page.eval_on_selector('.chart[data-metric="val.loss"]', "c => c.data[0].y.length") == 30

    assert "ResNet-50 sweep" in page.inner_text("#readme")
    page.fill("#param-search", "layers")
    assert page.eval_on_selector_all("#parameters tr[data-key]", "rs => rs.map(r => r.dataset.key)") == ["model.layers"]
    assert page.inner_text('#parameters .params-group[data-group="model"] h3').lower() == "model"

    page.select_option("#log-level", "WARNING")
    page.wait_for_function("[...document.querySelectorAll('#log-lines .log-line')].every(l => l.dataset.level === 'WARNING')")
    assert "warm-up skipped" in page.inner_text("#log-lines")
    assert '"lr": 0.01' in page.inner_text("#log-lines").replace(":0.01", ": 0.01")

    page.click('#files tr[data-path="config.json"] button')
    page.wait_for_selector("#file-preview pre.json")
    assert '"layers": 50' in page.inner_text("#file-preview")
    page.click('#files tr[data-path="plots/confusion.png"] button')
    page.wait_for_function("(() => { const i = document.querySelector('#file-preview img'); return i && i.naturalWidth === 96; })()")


def test_wall_time_axis(server, page):
    base_url, _, seeded = server
    page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")
    wait_for_charts(page, 5)
    page.select_option("#x-axis", "time")
    page.wait_for_function("document.querySelector('.chart[data-metric=\"train.loss\"]')._fullLayout.xaxis.type === 'date'")
    xs = page.eval_on_selector('.chart[data-metric="train.loss"]', "c => c.data[0].x")
    assert xs[0] > 1e12  # epoch milliseconds, not steps
    assert xs[-1] - xs[0] == pytest.approx(299 * 2000, abs=1)  # 300 steps seeded 2 s apart


def test_runs_table_filters_sorts_and_links(server, page):
    base_url, _, _ = server
    page.goto(f"{base_url}/#/ws/alice/vision")
    page.wait_for_selector("#runs-table tbody tr")
    prefixes = lambda: page.eval_on_selector_all("#runs-table tbody tr", "rs => rs.map(r => r.dataset.prefix)")
    assert sorted(prefixes()) == ["resnet-live", "resnet-lr0.001", "resnet-lr0.01", "resnet-lr0.1", "vit-small"]
    header = page.eval_on_selector_all("#runs-table th", "hs => hs.map(h => h.dataset.column)")
    # The default columns: the built-ins, the parameters that vary, the metrics (hostname is in the column chooser).
    assert {"status", "prefix", "started", "duration", "param:lr", "param:model.layers",
            "metric:train.loss"} <= set(header) and "hostname" not in header
    assert page.locator('#runs-table tr[data-prefix="resnet-live"] .status-RUNNING .pulse').count() == 1

    # The filter runs in the server (experimentPage); the table marks which filter its rows answer.
    def filtered(text: str) -> list[str]:
        page.fill("#runs-filter", text)
        page.wait_for_function(f"document.querySelector('#runs-scroll').dataset.filter === {text!r}")
        return prefixes()

    assert filtered("lr = 0.001") == ["resnet-lr0.001"]
    assert filtered("model.layers > 50") == ["resnet-lr0.1"]
    assert len(filtered("model.layers >= 34, optimizer = sgd")) == 3
    page.fill("#runs-filter", "no_such_param = 1")
    page.wait_for_selector("#runs-filter-error:has-text('no column')")

    filtered("")
    page.click('#runs-table th[data-column="param:lr"]')  # ascending
    page.wait_for_selector('#runs-table th[data-column="param:lr"] .arrow')
    page.wait_for_function("document.querySelector('#runs-table tbody tr').dataset.prefix === 'vit-small'")
    assert prefixes() == ["vit-small", "resnet-lr0.001", "resnet-live", "resnet-lr0.01", "resnet-lr0.1"]
    page.click('#runs-table th[data-column="param:lr"]')  # descending
    page.wait_for_function("document.querySelector('#runs-table tbody tr').dataset.prefix === 'resnet-lr0.1'")

    page.click('#runs-table tr[data-prefix="vit-small"] a')
    page.wait_for_selector("#exp-header h1:has-text('vit-small') .status-FAILED")


def test_navigator_search(server, page):
    base_url, _, _ = server
    page.goto(f"{base_url}/#/")
    page.wait_for_selector("#nav-tree li[data-key='ns:alice']")  # the top level (folders open on demand)
    page.fill("#nav-search", "language model")  # matches bob's readme only (the server searches)
    page.wait_for_function("document.querySelectorAll('#nav-tree a[data-experiment]').length === 1")
    assert page.inner_text("#nav-tree a[data-experiment]").strip() == "gpt-tiny"
    page.fill("#nav-search", "resnet-lr")
    page.wait_for_function("document.querySelectorAll('#nav-tree a[data-experiment]').length === 3")


def test_compare_two_runs_overlays_them(server, page):
    base_url, _, _ = server
    page.goto(f"{base_url}/#/ws/alice/vision?dir=sweeps/resnet")
    page.wait_for_selector("#runs-table tbody tr")
    assert page.locator("#runs-table tbody tr").count() == 4  # the baselines/ directory is outside the subtree
    page.check('#runs-table tr[data-prefix="resnet-lr0.001"] .select-row')
    page.check('#runs-table tr[data-prefix="resnet-lr0.1"] .select-row')
    page.click("#compare-button")
    page.wait_for_selector(".compare-chart[data-state=ready]")
    # Several metrics at once: one chart per ticked metric, in the list's order.
    page.check('#compare-metrics label[data-metric="train.loss"] input')
    page.check('#compare-metrics label[data-metric="val.acc"] input')
    page.uncheck('#compare-metrics label[data-metric="lr"] input')
    chart = '.compare-chart[data-metric="train.loss"]'
    page.wait_for_function(f"(() => {{ const c = document.querySelector('{chart}'); "
                           "return c && c.dataset.state === 'ready' && c.data && c.data.length === 2 && c.data[0].y.length === 300; })()")
    page.wait_for_selector('.compare-chart[data-metric="val.acc"][data-state=ready]')
    assert page.eval_on_selector_all(".compare-chart", "cs => cs.map(c => c.dataset.metric)") == ["train.loss", "val.acc"]
    assert "metric=train.loss&metric=val.acc" in page.url
    assert page.locator(f"{chart} .scatterlayer .trace").count() == 2
    names = page.eval_on_selector(chart, "c => c.data.map(t => t.name)")
    # The legend keys each run by prefix plus only the parameters that differ between them.
    assert names == ["resnet-lr0.001 (lr=0.001, model.layers=18, model.name=resnet18)",
                     "resnet-lr0.1 (lr=0.1, model.layers=101, model.name=resnet101)"]
    assert page.locator(f"{chart} .legendtext").count() == 2


def test_live_run_updates_without_reload(server, page):
    base_url, _, seeded = server
    live = seeded["resnet-live"]
    page.goto(f"{base_url}/#/exp/{live.id}")
    wait_for_charts(page, 5)
    page.wait_for_selector("#exp-header[data-live=on] .status-RUNNING .pulse")
    page.wait_for_selector("#live-indicator:not([hidden])")
    before = page.eval_on_selector('.chart[data-metric="train.loss"]', "c => Math.max(...c.data[0].x)")
    assert before == 149
    page.evaluate("window.__sameDocument = true")  # vanishes if the page reloads

    live.metrics([(step, {"train.loss": 0.5, "train.acc": 0.8}) for step in range(150, 180)])
    live.log("INFO", "epoch 2 done")
    page.wait_for_function("Math.max(...document.querySelector('.chart[data-metric=\"train.loss\"]').data[0].x) === 179")
    page.wait_for_selector("#log-lines :text('epoch 2 done')")

    live.finish("COMPLETED")
    page.wait_for_selector("#exp-header .status-COMPLETED")
    page.wait_for_selector("#live-indicator", state="hidden")
    assert page.evaluate("window.__sameDocument") is True


def test_million_point_series_is_downsampled_and_keeps_its_spike(server, page):
    base_url, _, seeded = server
    page.goto(f"{base_url}/#/exp/{seeded['big'].id}")
    wait_for_charts(page, 1)
    stats = page.evaluate(TRACE_STATS, ".chart")
    width = page.eval_on_selector(".chart", "c => c.clientWidth")
    assert stats["count"] == BIG_POINTS
    assert stats["traces"] == 1
    assert stats["points"] <= 2 * width < BIG_POINTS  # about one min/max pair per pixel
    assert stats["max"] == SPIKE_VALUE  # min/max envelope: the one-point spike survives
    assert page.locator(".chart .scatterlayer .trace path.js-line").count() == 1

    # Zoom to 201 steps around the spike: the chart refetches that range at full resolution.
    renders = int(page.get_attribute(".chart", "data-renders"))
    page.evaluate(f"Plotly.relayout(document.querySelector('.chart'), {{'xaxis.range': [{SPIKE_STEP - 100}, {SPIKE_STEP + 100}]}})")
    page.wait_for_function(f"Number(document.querySelector('.chart').dataset.renders) > {renders}")
    zoomed = page.evaluate(TRACE_STATS, ".chart")
    assert zoomed["xs"] == list(range(SPIKE_STEP - 100, SPIKE_STEP + 101))
    assert zoomed["max"] == SPIKE_VALUE

    # Double-click reset (autorange) goes back to the whole-series envelope.
    renders = int(page.get_attribute(".chart", "data-renders"))
    page.evaluate("Plotly.relayout(document.querySelector('.chart'), {'xaxis.autorange': true})")
    page.wait_for_function(f"Number(document.querySelector('.chart').dataset.renders) > {renders}")
    assert page.evaluate(TRACE_STATS, ".chart")["count"] == BIG_POINTS


def test_run_logged_by_the_client_library_shows_up(server, page, tmp_path, monkeypatch):
    """End to end: Experiment(remote=...) uploads, and the dashboard draws what the client logged."""
    from ml_dash import Experiment

    base_url, _, _ = server
    for var in [v for v in os.environ if v.startswith(("ML_DASH_", "ML_LOGGER_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ML_DASH_CONSOLE", "0")  # pytest holds fds 1 and 2 (tests/conftest.py)
    exp = Experiment(namespace="carol", workspace="client", prefix="from-library", remote=base_url,
                     local_root=str(tmp_path / ".ml-logger"))
    with exp.run():
        exp.params.set(lr=0.002, model={"layers": 8})
        for step in range(50):
            exp.metrics.log(step=step, **{"train.loss": 1.0 / (step + 1), "val.acc": step / 50})
        exp.info("done")

    page.goto(f"{base_url}/#/ws/carol/client")
    page.wait_for_selector('#runs-table tr[data-prefix="from-library"] .status-COMPLETED')
    page.click('#runs-table tr[data-prefix="from-library"] a')
    wait_for_charts(page, 2)
    assert page.eval_on_selector('.chart[data-metric="train.loss"]', "c => c.data[0].y.length") == 50
    assert page.locator(".chart .scatterlayer .trace").count() == 2
    page.wait_for_selector("#log-lines :text('done')")
