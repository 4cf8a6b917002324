"""The dashboard under the server's Content-Security-Policy, with hostile names, and with partly failed answers."""
from __future__ import annotations

import json
import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from dashboard_seed import Server, seed_demo  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402

# Plotly reads <b>, <i>, <a href>, <br> in the text it draws; these are names, to be shown as typed.
MARKUP_PREFIXES = ['A<b>bold<i>it &amp; more', 'B<a href="https:evil.example">click<br>here']
MARKUP_METRIC = "<b>loss</b>"
FAILED = "Float cannot represent non numeric value: inf"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("dashboard-hardening")) as base_url:
        client = Server(base_url)
        seeded = seed_demo(client, steps=30)
        for prefix in MARKUP_PREFIXES:
            exp = client.experiment("carol", "markup", prefix)
            exp.metrics([(step, {MARKUP_METRIC: step * 0.5}) for step in range(20)])
            seeded[prefix] = exp
        yield base_url, seeded


@pytest.mark.parametrize("bundle", ["basic", "full"])
def test_pages_run_under_the_content_security_policy(tmp_path, strict_page, bundle):
    """Experiment page, runs table and compare view in a context that enforces the CSP (any violation fails)."""
    from ml_dash.server.http.dashboard import full_plotly_js_path

    args = ["--chart-js", str(full_plotly_js_path())] if bundle == "full" else []
    with running_server(tmp_path / "csp", args=args) as base_url:
        seeded = seed_demo(Server(base_url), steps=30)
        answer = strict_page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        strict_page.wait_for_selector(".chart[data-state=ready] >> nth=4")
        assert strict_page.locator(".chart .scatterlayer .trace path.js-line").count() == 5
        strict_page.click('#files tr[data-path="plots/confusion.png"] button')  # a blob: image
        strict_page.wait_for_selector("#file-preview img")
        strict_page.goto(f"{base_url}/#/ws/alice/vision")
        strict_page.wait_for_selector("#runs-table tbody tr")
        ids = ",".join(seeded[p].id for p in ("resnet-lr0.001", "resnet-lr0.1"))
        strict_page.goto(f"{base_url}/#/compare?ids={ids}")
        strict_page.wait_for_selector(".compare-chart[data-state=ready]")
        assert strict_page.locator(".compare-chart .legendtext").count() == 2


def test_names_reach_plotly_as_text_not_markup(server, page):
    base_url, seeded = server
    ids = ",".join(seeded[p].id for p in MARKUP_PREFIXES)
    page.goto(f"{base_url}/#/compare?ids={ids}")
    page.wait_for_selector(".compare-chart[data-state=ready]")
    page.wait_for_function("document.querySelectorAll('.compare-chart .legendtext').length === 2")
    legend = page.eval_on_selector_all(".compare-chart .legendtext", "ts => ts.map(t => t.textContent)")
    assert legend == MARKUP_PREFIXES
    # No link, no bold or italic, no line break drawn from a name.
    assert page.locator(".compare-chart a").count() == 0
    assert page.locator(".compare-chart .legendtext tspan").count() == 0

    page.goto(f"{base_url}/#/exp/{seeded[MARKUP_PREFIXES[0]].id}")
    page.wait_for_selector(".chart[data-state=ready]")
    chart = f'.chart[data-metric="{MARKUP_METRIC}"]'
    box = page.locator(chart + " .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(chart + " .hoverlayer .hovertext")
    hover = page.eval_on_selector(chart + " .hoverlayer", "h => h.textContent")
    assert page.locator(chart + " .hoverlayer tspan[style*=bold]").count() == 0
    assert MARKUP_METRIC in hover, hover


def _inject_failed_field(route, mutate):
    """Answer like a server on which one field failed: that field null, an error naming it, the rest intact."""
    answer = route.fetch()
    body = answer.json()
    body.setdefault("errors", []).append(mutate(body["data"]))
    route.fulfill(response=answer, body=json.dumps(body),
                  headers={**answer.headers, "content-type": "application/json"})


def _on_queries(page, names_to_mutate):
    def handle(route):
        query = json.loads(route.request.post_data or "{}").get("query", "")
        for name, mutate in names_to_mutate.items():
            if query.startswith(f"query {name}("):
                return _inject_failed_field(route, mutate)
        return route.continue_()

    page.route("**/graphql", handle)


def test_a_failed_field_leaves_the_rest_of_the_view(server, page):
    """Before: one failed field (errors + partial data) made every view say "Could not load this view"."""
    base_url, seeded = server

    def experiment_started_at(data):
        data["experiment"]["startedAt"] = None
        return {"message": FAILED, "path": ["experiment", "startedAt"]}

    def first_row_started_at(data):  # the runs table reads pages of experimentPage
        data["page"]["items"][0]["startedAt"] = None
        return {"message": FAILED, "path": ["page", "items", 0, "startedAt"]}

    _on_queries(page, {"Exp": experiment_started_at, "Page": first_row_started_at})
    page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")
    page.wait_for_selector(".chart[data-state=ready] >> nth=4")
    assert "resnet-lr0.01" in page.inner_text("#exp-header h1")
    assert FAILED in page.inner_text("#partial-errors") and "experiment.startedAt" in page.inner_text("#partial-errors")
    assert "Could not load this view" not in page.inner_text("#main")

    page.goto(f"{base_url}/#/ws/alice/vision")
    page.wait_for_selector("#runs-table tbody tr")
    assert page.locator("#runs-table tbody tr").count() == 5
    assert FAILED in page.inner_text("#partial-errors")


def test_live_poll_does_not_ask_for_the_readme_again(server, page):
    """The page of a RUNNING experiment polls every LIVE_POLL_MS: before, each poll asked for readme and readmeHtml
    (a rendering of up to MAX_README_CHARS); now only the first load does, and the readme stays shown."""
    base_url, seeded = server
    queries: list[str] = []
    page.on("request", lambda r: queries.append(json.loads(r.post_data or "{}").get("query", ""))
            if r.url.endswith("/graphql") else None)
    page.goto(f"{base_url}/#/exp/{seeded['resnet-live'].id}")
    page.wait_for_selector("#readme .readme")
    with page.expect_request(lambda r: r.url.endswith("/graphql") and "query Exp(" in (r.post_data or "")):
        pass  # the first poll
    experiment_queries = [q for q in queries if q.startswith("query Exp(")]
    assert len(experiment_queries) >= 2 and "readmeHtml" in experiment_queries[0]
    assert not any("readme" in q for q in experiment_queries[1:])
    assert "still training" in page.inner_text("#readme")
