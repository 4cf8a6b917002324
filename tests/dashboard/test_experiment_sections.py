"""The experiment page of a transformers-like run in headless Chromium against a real server: a sticky bar of
sections, a long config collapsed, '/'-separated metric names grouped, None shown as null, files in natural order;
and the parallel coordinates' tick labels."""
from __future__ import annotations

import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from dashboard_seed import Server, seed_sweep  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("sections-server")) as base_url:
        client = Server(base_url)
        exp = client.experiment("alice", "hf", "bert-finetune", readme="# Fine-tuning\n\nBERT on GLUE.")
        exp.params(args={f"opt_{k:03d}": k for k in range(170)}, hub_token=None, seed=42)
        exp.metrics([(s, {"train/loss": 2 - s / 50, "train/learning_rate": 1e-4, "eval/loss": 2.2 - s / 50, "epoch": s / 10})
                     for s in range(50)])
        for epoch in (10, 5, 9, 100):
            exp.upload(f"checkpoints/epoch_{epoch}.txt", b"x")
        exp.finish()
        ids = seed_sweep(client, steps=10, workspace="sweep")
        yield base_url, exp.id, ids


def test_sections_bar_collapsed_config_slash_groups_null_and_natural_file_order(server, page):
    base_url, experiment_id, _ = server
    page.goto(f"{base_url}/#/exp/{experiment_id}")
    page.wait_for_function("document.querySelectorAll('.chart[data-state=ready]').length === 4")
    assert page.eval_on_selector_all("#section-bar .section-link", "bs => bs.map(b => b.dataset.section)") == \
        ["overview", "metrics", "media", "system", "logs", "files"]
    # 172 parameters start collapsed: the charts are within a screen of the top, not 3,000 px down.
    assert page.eval_on_selector("#parameters-panel", "d => d.open") is False
    assert page.eval_on_selector("#metrics", "m => m.getBoundingClientRect().top") < 1200
    groups = page.eval_on_selector_all("#metrics .metric-group", "gs => gs.map(g => [g.dataset.group, "
                                       "g.querySelector('h3') && g.querySelector('h3').textContent, "
                                       "[...g.querySelectorAll('.chart')].map(c => c.dataset.metric)])")
    assert groups == [["", None, ["epoch"]], ["eval", "eval/*", ["eval/loss"]],
                      ["train", "train/*", ["train/learning_rate", "train/loss"]]]
    # The bar stays in view and jumps to a section.
    page.click('#section-bar [data-section="files"]')
    # Scrolled as far as the page allows (the files are last): the section is in view, below the bar.
    page.wait_for_function("(() => { const m = document.querySelector('#main'), f = document.querySelector('#files'); "
                           "const bar = document.querySelector('#section-bar').getBoundingClientRect().bottom; "
                           "const top = f.getBoundingClientRect().top; return m.scrollTop > 0 && top >= bar - 1 && "
                           "(top - bar < 60 || Math.ceil(m.scrollTop + m.clientHeight) >= m.scrollHeight); })()")
    assert page.eval_on_selector("#section-bar", "b => b.getBoundingClientRect().top") >= 0
    assert page.eval_on_selector_all("#files tr[data-path]", "rs => rs.map(r => r.dataset.path)") == [
        "checkpoints/epoch_5.txt", "checkpoints/epoch_9.txt", "checkpoints/epoch_10.txt", "checkpoints/epoch_100.txt"]
    # Opened, the parameters show None as null.
    page.click("#parameters-panel > summary")
    assert page.inner_text('#parameters tr[data-key="hub_token"] td:last-child') == "null"


def test_parallel_coordinates_label_every_axis_with_numbers_or_category_names(server, page):
    base_url, _, _ = server
    page.goto(f"{base_url}/#/ws/alice/sweep?view=parallel")
    page.wait_for_selector("#parallel[data-state=ready]")
    ticks = page.eval_on_selector_all("#parallel .pc-axis", "as => as.map(a => [a.dataset.axis, "
                                      "[...a.querySelectorAll('.pc-tick')].map(t => t.textContent)])")
    by_axis = dict(ticks)
    assert by_axis["lr"] == ["0.001", "0.01", "0.1"]  # a log axis: its powers of ten
    assert by_axis["optimizer"] == ["adam", "sgd"]
    assert by_axis["seed"] == ["0", "1"]  # whole numbers only
    metric = next(v for k, v in ticks if k.startswith("last("))
    assert len(metric) >= 3 and all(float(t) == float(t) for t in metric)
