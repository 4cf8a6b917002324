"""The workspace views in headless Chromium against a real server: overlaid charts of every filtered run (one
batched request per metric), the chart controls, colour/group by a parameter, parallel coordinates with brushing,
only the visible rows of a long runs table, Markdown readmes, and the small fixes (breadcrumbs, binary previews)."""
from __future__ import annotations

import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from dashboard_seed import Server, seed_sweep  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402

STEPS = 60
SPIKE = ("sweep-lr0.03-adam-s1", 33, 50.0)  # one run's one-step loss spike
ROWS = 250  # the long table
XSS_README = ("# Title\nDirectly under the heading.\n\n<script>window.__xss = 1</script>\n\n"
              "<img src=x onerror=\"window.__xss = 2\">\n\n[bad](javascript:window.__xss=3) and **bold** `code`\n\n"
              "| a | b |\n|---|--:|\n| 1 | 2 |")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("workspace-server")) as base_url:
        client = Server(base_url)
        ids = seed_sweep(client, STEPS, SPIKE)
        readme = client.experiment("alice", "notes", "markdown", readme=XSS_README)
        readme.upload("model.pt", bytes(range(256)) * 4)
        readme.upload("notes.txt", b"plain text\n")
        readme.finish()
        ids["markdown"] = readme.id
        for i in range(ROWS):
            exp = client.experiment("alice", "many", f"row-{i:04d}")
            exp.params(index=i)
        yield base_url, ids


def series_batches(page) -> list:
    sent: list = []
    page.on("request", lambda r: sent.append(r.post_data) if r.method == "POST" and "seriesBatch" in (r.post_data or "") else None)
    return sent


def wait_overlays(page, count: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('.overlay-chart[data-state=ready]').length === {count}")


def test_workspace_charts_overlay_every_filtered_run_in_one_request_per_metric(server, page):
    """Each metric's chart overlays all 24 runs from one seriesBatch request; the spike survives; the table's
    filter narrows the charts too."""
    base_url, ids = server
    sent = series_batches(page)
    page.goto(f"{base_url}/#/ws/alice/sweep?view=charts")
    wait_overlays(page, 2)
    assert len(sent) == 2  # acc and loss: one request each, not one per run
    loss = '.overlay-chart[data-metric="loss"]'
    assert page.get_attribute(loss, "data-runs") == "24"
    assert float(page.get_attribute(loss, "data-max")) == SPIKE[2]
    page.fill("#runs-filter", "lr = 0.03")
    page.wait_for_function(f"document.querySelector('{loss}').dataset.runs === '4'")
    assert page.locator("#runs-table tbody tr[data-experiment]").count() == 4


def test_hover_names_and_highlights_a_run_and_click_opens_it(server, page):
    """Pointing at the spike names its run in the tooltip; a click opens that run."""
    base_url, ids = server
    page.goto(f"{base_url}/#/ws/alice/sweep?view=charts")
    wait_overlays(page, 2)
    loss = '.overlay-chart[data-metric="loss"]'
    # The robust default y range leaves the one-step spike off the chart: show every value first.
    page.select_option(f'.chart-card:has({loss}) select.y-range', "full")
    page.wait_for_selector(f"{loss}[data-y-mode=full]")
    # Find the spike's pixel from the chart's own scales, then hover there.
    x, y = page.eval_on_selector(loss, """(c) => { const chart = c.querySelector('.overlay-top');
      const box = chart.getBoundingClientRect(); return [box.left, box.top]; }""")
    box = page.eval_on_selector(loss, "(c) => [c.clientWidth, 240]")
    # The spike is the highest point: y just under the top margin; x at step 33 of 0..59 across the plot width.
    plot_left, plot_width = 56, box[0] - 56 - 12
    page.mouse.move(x + plot_left + plot_width * SPIKE[1] / (STEPS - 1), y + 10 + (240 - 40) * 0.04 / 1.08 + 1)
    page.wait_for_function(f"document.querySelector('{loss}').dataset.hovered === '{ids[SPIKE[0]]}'")
    assert SPIKE[0] in page.inner_text(f"{loss} .overlay-tip")
    page.mouse.down()
    page.mouse.up()
    page.wait_for_selector(f"#exp-header h1:has-text('{SPIKE[0]}')")


def test_controls_smooth_log_and_relative_time_on_an_experiment_page(server, page):
    """Smoothing adds an EMA trace and keeps the raw one faint (spike intact); log y; relative time starts at 0."""
    base_url, ids = server
    page.goto(f"{base_url}/#/exp/{ids[SPIKE[0]]}")
    page.wait_for_function("document.querySelectorAll('.chart[data-state=ready]').length === 2")
    chart = '.chart[data-metric="loss"]'
    renders = int(page.get_attribute(chart, "data-renders"))
    page.fill("#smoothing", "0.9")
    page.wait_for_function(f"Number(document.querySelector('{chart}').dataset.renders) > {renders}")
    traces = page.eval_on_selector(chart, "c => c.data.map(t => [t.meta, t.opacity ?? 1, Math.max(...t.y)])")
    assert [t[0] for t in traces] == ["raw", "smoothed"] and traces[0][1] < 0.5
    assert traces[0][2] == SPIKE[2] and traces[1][2] < SPIKE[2]  # the EMA flattens the spike, the raw line keeps it
    page.check("#log-y")
    page.wait_for_function(f"document.querySelector('{chart}')._fullLayout.yaxis.type === 'log'")
    page.select_option("#x-axis", "relative")
    page.wait_for_function(f"document.querySelector('{chart}')._fullLayout.xaxis.title.text === 'minutes since start'")
    xs = page.eval_on_selector(chart, "c => c.data[0].x")
    assert xs[-1] == pytest.approx((STEPS - 1) * 5 / 60)  # 5 s per step, in minutes


def test_workspace_charts_redraw_at_a_new_width(server, page):
    """Narrowing the window redraws each overlay at its new width (the canvas follows the card)."""
    base_url, _ = server
    page.goto(f"{base_url}/#/ws/alice/sweep?view=charts")
    wait_overlays(page, 2)
    loss = '.overlay-chart[data-metric="loss"]'
    before = page.eval_on_selector(loss, "c => c.querySelector('canvas').style.width")
    page.set_viewport_size({"width": 900, "height": 900})
    page.wait_for_function(f"(() => {{ const c = document.querySelector('{loss}'); "
                           f"return c.querySelector('canvas').style.width === c.clientWidth + 'px'; }})()")
    assert page.eval_on_selector(loss, "c => c.querySelector('canvas').style.width") != before


def test_colour_and_group_by_a_parameter(server, page):
    """Grouping by optimizer draws one mean line with a band per value; the band keeps the spike."""
    base_url, _ = server
    page.goto(f"{base_url}/#/ws/alice/sweep?view=charts")
    wait_overlays(page, 2)
    loss = '.overlay-chart[data-metric="loss"]'
    page.select_option("#color-by", "optimizer")
    page.wait_for_selector("#charts-legend .legend-item:has-text('optimizer = adam')")
    renders = int(page.get_attribute(loss, "data-renders"))
    page.check("#group-by")
    page.wait_for_function(f"Number(document.querySelector('{loss}').dataset.renders) > {renders}")
    assert page.get_attribute(loss, "data-lines") == "2"
    assert "2 groups" in page.inner_text('.chart-card:has([data-metric="loss"]) .count')
    page.select_option("#x-axis", "time")  # one more request per chart, with timestamps
    page.wait_for_function(f"Number(document.querySelector('{loss}').dataset.renders) > {renders + 1}")


def test_parallel_coordinates_brush_filters_the_table_and_click_opens(server, page):
    """One line per run over the varying parameters plus the metric; brushing the lr axis's top narrows the table
    to the runs with the largest lr; clicking a scatter point opens its run."""
    base_url, ids = server
    page.goto(f"{base_url}/#/ws/alice/sweep?view=parallel")
    page.wait_for_selector("#parallel[data-state=ready]")
    assert page.locator("#parallel .pc-line").count() == 24
    axes = page.eval_on_selector_all("#parallel .pc-axis", "gs => gs.map(g => g.dataset.axis)")
    assert axes == ["lr", "optimizer", "seed", "last(loss)"]
    target = page.locator('#parallel .pc-axis[data-axis="lr"] .pc-target').bounding_box()
    # lr is on a log axis (0.001 … 0.3): its top 10% holds only 0.3.
    x = target["x"] + target["width"] / 2
    page.mouse.move(x, target["y"] + 1)
    page.mouse.down()
    page.mouse.move(x, target["y"] + target["height"] * 0.1, steps=4)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#parallel').dataset.brushed === '4'")
    assert page.locator("#runs-table tbody tr[data-experiment]").count() == 4
    assert all("lr0.3-" in p for p in page.eval_on_selector_all("#runs-table tbody tr", "rs => rs.map(r => r.dataset.prefix)"))
    page.select_option("#pc-agg", "max")  # a batched read of every run's extremes
    page.wait_for_function("document.querySelector('#parallel .pc-axis[data-axis=\"max(loss)\"]') !== null")
    assert page.get_attribute("#scatter", "data-points") == "24"
    page.click(f'#scatter .sc-point[data-experiment="{ids["sweep-lr0.001-sgd-s0"]}"]', force=True)
    page.wait_for_selector("#exp-header h1:has-text('sweep-lr0.001-sgd-s0')")


def test_compare_of_many_runs_is_one_batched_request_and_zoom_refetches_it(server, page):
    """Comparing all 24 runs draws 24 traces from one seriesBatch request (aliases were capped near 65 runs);
    zooming asks again, once, for the visible step range."""
    base_url, ids = server
    sent = series_batches(page)
    page.goto(f"{base_url}/#/compare?ids={','.join(v for k, v in ids.items() if k.startswith('sweep-'))}&metric=loss")
    chart = '.compare-chart[data-metric="loss"]'
    page.wait_for_function(f"(() => {{ const c = document.querySelector('{chart}'); "
                           "return c && c.dataset.state === 'ready' && c.data.length === 24; })()")
    assert len(sent) == 1
    assert max(page.eval_on_selector(chart, "c => c.data.map(t => Math.max(...t.y))")) == SPIKE[2]
    renders = int(page.get_attribute(chart, "data-renders"))
    page.evaluate(f"Plotly.relayout(document.querySelector('{chart}'), {{'xaxis.range': [20, 40]}})")
    page.wait_for_function(f"Number(document.querySelector('{chart}').dataset.renders) > {renders}")
    assert len(sent) == 2 and '"stepMin": 20' in sent[1].replace(":20", ": 20")
    assert page.eval_on_selector(chart, "c => c.data[0].x") == list(range(20, 41))


def test_long_runs_table_renders_only_the_rows_in_view(server, page):
    """250 runs: far fewer rows are in the DOM; scrolling to the end renders the last one."""
    base_url, _ = server
    page.goto(f"{base_url}/#/ws/alice/many")
    page.wait_for_selector("#runs-table tbody tr[data-experiment]")
    page.wait_for_function(f"document.querySelector('#runs-scroll').dataset.total === '{ROWS}'")
    assert page.locator("#runs-table tbody tr[data-experiment]").count() < ROWS / 2
    page.click('#runs-table th[data-column="param:index"]')  # ascending
    page.wait_for_selector('#runs-table tbody tr[data-prefix="row-0000"]')
    page.eval_on_selector("#runs-scroll", "s => { s.scrollTop = s.scrollHeight; }")
    page.wait_for_selector(f'#runs-table tbody tr[data-prefix="row-{ROWS - 1:04d}"]')
    assert page.locator("#runs-table tbody tr[data-experiment]").count() < ROWS / 2


def test_readme_is_markdown_and_never_markup_from_the_readme(server, page):
    """A heading directly followed by a line is a heading and a paragraph; no script, onerror or javascript: link
    reaches the DOM; a binary file offers no preview, a text file does."""
    base_url, ids = server
    page.goto(f"{base_url}/#/exp/{ids['markdown']}")
    page.wait_for_selector("#readme .readme h1")
    assert page.inner_text("#readme .readme h1") == "Title"
    assert page.inner_text("#readme .readme h1 + p") == "Directly under the heading."
    assert page.locator("#readme .readme strong").count() == 1 and page.locator("#readme .readme table td").count() == 2
    assert page.evaluate("document.querySelectorAll('#readme script, #readme img, #readme [onerror]').length") == 0
    assert page.evaluate("[...document.querySelectorAll('#readme a')].every(a => !a.href.startsWith('javascript'))")
    assert "<script>" in page.inner_text("#readme")  # shown as the text it is
    assert page.evaluate("window.__xss") is None
    page.wait_for_selector('#files tr[data-path="notes.txt"] button')
    assert page.locator('#files tr[data-path="model.pt"] button').count() == 0


def test_missing_experiment_does_not_keep_the_previous_breadcrumb(server, page):
    """After an experiment page, an unknown id's page shows its own trail, not the previous run's."""
    base_url, ids = server
    page.goto(f"{base_url}/#/exp/{ids['markdown']}")
    page.wait_for_selector("#breadcrumbs :text('markdown')")
    page.evaluate("location.hash = '#/exp/' + '0'.repeat(32)")
    page.wait_for_selector("#main :text('No experiment with id')")
    assert "markdown" not in page.inner_text("#breadcrumbs") and "notes" not in page.inner_text("#breadcrumbs")
