"""The experiment page's runs as segments of one history, the lineage of forks and the charts' "show superseded"
toggle (js/experiment_runs.js, lib/runs.js), in headless Chromium against a real server, logged with the client: a
run of steps 0-99, a rerun resuming at step 50, and a fork of it at step 79."""
from __future__ import annotations

import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from ml_dash import Experiment  # noqa: E402
from tests.upload.conftest import find_experiment_id, remote_env, server  # noqa: E402,F401


def log(root, remote, prefix, steps, value, **kwargs):
    exp = Experiment(namespace="alice", workspace="branches", prefix=prefix, local_root=root, remote=remote, **kwargs)
    with exp.run():
        for step in steps:
            exp.metrics.log(step=step, loss=value(step))


def test_runs_strip_lineage_links_and_superseded_trace(tmp_path, server, remote_env, page):
    root = str(tmp_path / "client")
    log(root, server, "a", range(100), float)
    log(root, server, "a", range(50, 100), lambda s: -float(s), resume_step=50)
    log(root, server, "b", range(80, 120), lambda s: 1000.0 + s, fork_from="a", fork_step=79)
    a, b = find_experiment_id(server, "a"), find_experiment_id(server, "b")

    page.goto(f"{server}/#/exp/{a}")
    page.wait_for_selector("#runs-strip .run-segment")
    segments = page.eval_on_selector_all("#runs-strip .run-segment", "ss => ss.map(s => [s.dataset.from, s.dataset.to, "
                                         "s.querySelector('.run-begins').textContent, s.querySelector('.run-shows').textContent])")
    assert segments == [["", "50", "start", "steps < 50"], ["50", "", "step 50", "steps ≥ 50"]]
    # The lineage: a's fork b, with a button overlaying both in the compare view.
    assert page.eval_on_selector_all("#lineage .lineage-children a", "as => as.map(a => a.dataset.id)") == [b]
    assert page.get_attribute("#lineage-overlay", "href") == f"#/compare?ids={a},{b}&metric=loss"

    # The toggle starts off: one trace, the history (0..49 of run 1, 50..99 of run 2).
    chart = '#metrics .chart[data-metric="loss"]'
    page.wait_for_function(f"document.querySelector('{chart}').dataset.state === 'ready'")
    assert page.eval_on_selector(chart, "c => c.data.length") == 1
    assert page.eval_on_selector(chart, "c => c.data[0].y.slice(49, 51)") == [49, -50]
    renders = int(page.get_attribute(chart, "data-renders"))
    page.check("#show-superseded")
    page.wait_for_function(f"Number(document.querySelector('{chart}').dataset.renders) > {renders}")
    faint = page.eval_on_selector(chart, "c => c.data.filter(t => t.meta === 'superseded')"
                                         ".map(t => ({x: t.x, y: t.y, opacity: t.opacity}))")
    assert len(faint) == 1 and faint[0]["opacity"] < 0.5
    assert faint[0]["x"] == list(range(50, 100)) and faint[0]["y"] == [float(s) for s in range(50, 100)]
    page.uncheck("#show-superseded")
    page.wait_for_function(f"document.querySelector('{chart}').data.length === 1")

    # The fork: one run (no strip), its parent linked with the fork step; the overlay opens the compare view.
    page.goto(f"{server}/#/exp/{b}")
    page.wait_for_selector("#lineage .lineage-parent a")
    assert page.get_attribute("#lineage .lineage-parent a", "data-id") == a
    assert "at step 79" in page.inner_text("#lineage .lineage-parent")
    assert page.query_selector("#runs-strip") is None and page.query_selector("#show-superseded") is None
    page.click("#lineage-overlay")
    page.wait_for_function("document.querySelectorAll('#compare-charts .chart[data-state=ready]').length === 1")
    assert page.eval_on_selector("#compare-charts .chart", "c => c.data.length") == 2
