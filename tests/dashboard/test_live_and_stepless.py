"""W&B habits on the dashboard, in headless Chromium against a real server: metrics logged without steps are drawn
(against the relative time by default), one-point metrics are numbers, and pages follow runs started after they
were opened."""
from __future__ import annotations

import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from dashboard_seed import SeededExperiment, Server  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("live-server")) as base_url:
        yield base_url, Server(base_url)


def stepless_run(client: Server, workspace: str) -> SeededExperiment:
    exp = client.experiment("carol", workspace, "trainer")
    t0 = exp.clock
    exp.batch("metrics", [{"timestamp": t0 + 10 * i, "metrics": {"loss": 5.0 - i / 10}} for i in range(30)]
              + [{"timestamp": t0 + 400, "metrics": {"train_runtime": 432.5}}])
    return exp


def test_stepless_metrics_are_drawn_on_a_time_axis_and_one_point_metrics_are_numbers(server, page):
    base_url, client = server
    exp = stepless_run(client, "stepless")
    exp.finish()
    page.goto(f"{base_url}/#/exp/{exp.id}")
    page.wait_for_selector(".chart[data-metric='loss'][data-state=ready][data-x-mode=relative]")
    drawn = page.evaluate("""() => { const g = document.querySelector(".chart[data-metric='loss']");
      return { x: g.data[0].x, y: g.data[0].y }; }""")
    assert drawn["y"] == [5.0 - i / 10 for i in range(30)]
    assert drawn["x"][0] == 0 and drawn["x"][-1] == pytest.approx(290 / 60) and None not in drawn["x"]  # minutes
    page.select_option("#x-axis", "step")  # by log order
    page.wait_for_selector(".chart[data-metric='loss'][data-x-mode=step]")
    assert page.evaluate("document.querySelector(\".chart[data-metric='loss']\").data[0].x") == list(range(30))
    assert page.inner_text("#metric-summary .summary-item[data-metric='train_runtime']") == "train_runtime\n432.5"
    assert page.query_selector(".chart[data-metric='train_runtime']") is None


def test_experiment_page_opened_before_its_run_shows_the_metrics_when_they_come(server, page):
    base_url, client = server
    experiment_id = client.request("POST", "/api/v1/experiments", {"namespace": "carol", "workspace": "early",
                                                                    "prefix": "waiting"})["experiment_id"]
    page.goto(f"{base_url}/#/exp/{experiment_id}")
    page.wait_for_selector("#metrics >> text=No metrics yet.")
    exp = SeededExperiment(client, experiment_id, "gpu-node-1", 1_700_000_000.0)
    exp.metrics([(step, {"loss": 1.0 / (step + 1)}) for step in range(20)])
    page.wait_for_selector(".chart[data-metric='loss'][data-state=ready]", timeout=15_000)
    assert page.evaluate("document.querySelector(\".chart[data-metric='loss']\").data[0].y.length") == 20


def test_runs_table_opened_while_nothing_runs_shows_a_run_started_later(server, page):
    base_url, client = server
    first = client.experiment("carol", "later", "first")
    first.metrics([(0, {"loss": 1.0})])
    first.finish()
    page.goto(f"{base_url}/#/ws/carol/later")
    page.wait_for_selector("#runs-scroll[data-total='1']")
    client.experiment("carol", "later", "second").metrics([(0, {"loss": 2.0})])
    page.wait_for_selector("#runs-scroll[data-total='2']", timeout=15_000)
    assert page.query_selector("tr[data-experiment] >> text=second") is not None
