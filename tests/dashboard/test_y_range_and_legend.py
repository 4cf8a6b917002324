"""Overlay and metric charts in headless Chromium against a real server: one diverged run no longer flattens the
others (a robust default y range, a per-chart y-range control), each overlay chart has a legend, and runs logged
without steps are drawn on the workspace charts' time axis."""
from __future__ import annotations

import base64
import json
import math
import os

import numpy as np
import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from dashboard_seed import Server  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402

STEPS = 60
DIVERGED = 1e6


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("y-range-server")) as base_url:
        client = Server(base_url)
        ids = {}
        for r in range(5):
            exp = client.experiment("alice", "diverge", f"run-{r}")
            exp.params(lr=0.001 * (r + 1))
            # run-4 diverges halfway: 30 of its 60 points at 1e6 (a tenth of every point drawn).
            exp.metrics([(s, {"loss": DIVERGED if r == 4 and s >= 30 else 2.3 * math.exp(-0.05 * s) + 0.1 * r})
                         for s in range(STEPS)], seconds_per_step=5.0)
            exp.finish()
            ids[f"run-{r}"] = exp.id
        for r in range(2):  # W&B's habit: timestamps only, no step=
            exp = client.experiment("alice", "stepless", f"wandb-{r}")
            exp.batch("metrics", [{"timestamp": exp.clock + 10 * i, "metrics": {"loss": 5.0 - i / 10 - r}}
                                  for i in range(30)])
            exp.finish()
        yield base_url, ids


LOSS = '.overlay-chart[data-metric="loss"]'


def y_range(page, selector: str) -> list[float]:
    return [float(v) for v in page.get_attribute(selector, "data-y-range").split(",")]


def test_a_diverged_run_does_not_flatten_the_others_and_full_shows_it(server, page):
    base_url, _ = server
    page.goto(f"{base_url}/#/ws/alice/diverge?view=charts")
    page.wait_for_selector(f"{LOSS}[data-state=ready]")
    assert page.get_attribute(LOSS, "data-runs") == "5" and float(page.get_attribute(LOSS, "data-max")) == DIVERGED
    low, high = y_range(page, LOSS)
    assert low < 0.1 and 2.7 < high < 5  # the four other runs (0.1 .. 2.7) fill the chart
    # The legend names every run in its colour.
    legend = page.eval_on_selector_all(f'.chart-card:has({LOSS}) .overlay-legend .legend-item',
                                       "items => items.map(i => [i.textContent, i.querySelector('.swatch').style.background])")
    assert sorted(text for text, _ in legend) == [f"run-{r}" for r in range(5)]
    assert len({colour for _, colour in legend}) == 5
    page.select_option(f'.chart-card:has({LOSS}) select.y-range', "full")
    page.wait_for_selector(f"{LOSS}[data-y-mode=full]")
    assert y_range(page, LOSS)[1] > DIVERGED
    page.select_option(f'.chart-card:has({LOSS}) select.y-range', "manual")
    page.fill(f'.chart-card:has({LOSS}) input.y-min', "1")
    page.fill(f'.chart-card:has({LOSS}) input.y-max', "2")
    page.press(f'.chart-card:has({LOSS}) input.y-max', "Enter")
    page.wait_for_function(f"document.querySelector('{LOSS}').dataset.yRange === '1,2'")


def test_grouped_overlay_has_a_legend_per_group(server, page):
    base_url, _ = server
    page.goto(f"{base_url}/#/ws/alice/diverge?view=charts")
    page.wait_for_selector(f"{LOSS}[data-state=ready]")
    page.select_option("#color-by", "lr")
    page.check("#group-by")
    page.wait_for_selector(f"{LOSS}[data-lines='5']")
    items = page.eval_on_selector_all(f'.chart-card:has({LOSS}) .overlay-legend .legend-item', "i => i.map(x => x.textContent)")
    assert len(items) == 5 and all(text.startswith("lr=") and text.endswith("(1 run)") for text in items)


def test_metric_chart_y_range_control(server, page):
    base_url, ids = server
    page.goto(f"{base_url}/#/exp/{ids['run-1']}")
    chart = '.chart[data-metric="loss"]'
    page.wait_for_selector(f"{chart}[data-state=ready]")
    page.select_option(f'.chart-card:has({chart}) select.y-range', "manual")
    page.fill(f'.chart-card:has({chart}) input.y-min', "0.5")
    page.fill(f'.chart-card:has({chart}) input.y-max', "1.5")
    page.press(f'.chart-card:has({chart}) input.y-max', "Enter")
    page.wait_for_function(f"document.querySelector('{chart}')._fullLayout.yaxis.range.join() === '0.5,1.5'")


def test_stepless_runs_are_drawn_on_the_workspace_charts_time_axis(server, page):
    base_url, _ = server
    answers = []
    page.on("response", lambda r: answers.append(r) if r.request.method == "POST" and "seriesBatch" in (r.request.post_data or "") else None)
    page.goto(f"{base_url}/#/ws/alice/stepless?view=charts")
    page.wait_for_selector(f"{LOSS}[data-state=ready][data-x-mode=relative]")
    page.wait_for_function(f"document.querySelector('{LOSS}').dataset.placed === '60'")  # every point has a place
    last = json.loads(answers[-1].body())["data"]["seriesBatch"]
    # The overlay asks for base64 arrays (server/http/series_encoding.py): Float64 times, NaN where JSON had null.
    assert all(a["times"].startswith("f8:") for a in last)
    times = [np.frombuffer(base64.b64decode(a["times"][3:]), "<f8") for a in last]
    assert all(len(t) and np.isfinite(t).all() for t in times)
    page.select_option("#x-axis", "time")
    page.wait_for_selector(f"{LOSS}[data-x-mode=time][data-placed='60']")
    page.select_option("#x-axis", "step")  # by log order
    page.wait_for_selector(f"{LOSS}[data-x-mode=step][data-placed='60']")
