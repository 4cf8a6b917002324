"""The experiment page's System chart group and Environment panel, in headless Chromium, for a run logged by the
client library (its sampler and environment capture) against a real server."""
from __future__ import annotations

import json
import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from ml_dash.server.testing import running_server  # noqa: E402


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A server, one run with system metrics and its environment, and one run with both turned off."""
    from ml_dash import Experiment

    root = tmp_path_factory.mktemp("system-panel")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    os.environ["ML_DASH_SYSTEM_INTERVAL"] = "0.05"
    try:
        with running_server(root / "server") as base_url:
            exp = Experiment(namespace="dora", workspace="sys", prefix="sampled", remote=base_url,
                             local_root=str(root / "logs"))
            with exp.run():
                exp.metrics.log(step=0, loss=1.0)
                exp.metrics.log(step=1, loss=0.5)
                assert exp._sampler.wait_for(4, timeout=30)
            bare = Experiment(namespace="dora", workspace="sys", prefix="bare", remote=base_url,
                              local_root=str(root / "logs"), system_metrics=False, capture_environment=False)
            with bare.run():
                bare.metrics.log(step=0, loss=1.0)  # two points: a one-point metric is a number, not a chart
                bare.metrics.log(step=1, loss=0.5)
            with open(os.path.join(exp.local_path, "system.jsonl")) as f:
                rows = [json.loads(line) for line in f]
            yield base_url, exp, bare, rows
    finally:
        os.environ.pop("ML_DASH_SYSTEM_INTERVAL", None)
        os.environ.update(saved)


def test_system_group_draws_the_samplers_series_on_a_time_axis(logged, page):
    """A "System" group apart from the user's charts: CPU and memory charts whose x values are the rows' times."""
    base_url, exp, _, rows = logged
    page.goto(f"{base_url}/#/exp/{exp.experiment_id}")
    page.wait_for_function("document.querySelectorAll('.chart[data-state=ready]').length === 1")  # loss only
    page.wait_for_selector("#system .system-chart[data-system-chart='Memory %'][data-state=ready]")
    titles = page.eval_on_selector_all("#system .system-chart", "cs => cs.map(c => c.dataset.systemChart)")
    # One scale per chart: the machine's CPU % apart from the process's, the process's RSS apart from the machine's.
    assert titles[:5] == ["Machine CPU % (all CPUs)", "Process CPU % (100 = one CPU)", "Process memory, RSS (MiB)",
                          "Machine memory (MiB)", "Memory %"] and "Threads" in titles
    assert page.inner_text("#system h2") == "System"
    assert page.eval_on_selector_all("#metrics .chart", "cs => cs.map(c => c.dataset.metric)") == ["loss"]
    cpu = page.wait_for_function("""() => { const c = document.querySelector("[data-system-chart='Machine CPU % (all CPUs)']");
        return c.dataset.state === 'ready' && { series: c.dataset.series, x: c.data[0].x, type: c._fullLayout.xaxis.type,
                                               traces: c.data.length }; }""").json_value()
    assert cpu["series"] == "cpu_percent" and cpu["traces"] == 1 and cpu["type"] == "date"
    # One point per row that has a CPU reading (not the first, taken at the start: no period to cover), at its time.
    assert cpu["x"] == [round(r["timestamp"] * 1000) for r in rows if "cpu_percent" in r["metrics"]]
    memory = page.eval_on_selector("[data-system-chart='Process memory, RSS (MiB)']", "c => c.dataset.series")
    assert memory == "process_rss_mb"
    # A count gets whole-number ticks only.
    page.wait_for_selector("[data-system-chart='Threads'][data-state=ready]")
    ticks = page.eval_on_selector("[data-system-chart='Threads']", "c => c._fullLayout.yaxis._vals.map(t => t.x)")
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_environment_panel_is_collapsed_and_lists_packages(logged, page):
    """The panel opens on a click and shows the command, Python and every captured package."""
    base_url, exp, _, _ = logged
    page.goto(f"{base_url}/#/exp/{exp.experiment_id}")
    page.wait_for_selector("#environment-panel")
    assert page.eval_on_selector("#environment-panel", "d => d.open") is False
    page.click("#environment-panel > summary")
    assert page.is_visible("#environment-panel tr[data-key='command']")
    assert exp.environment["python"]["version"] in page.inner_text("#environment-panel tr[data-key='python']")
    page.click("#environment-packages-panel > summary")
    names = page.eval_on_selector_all("#environment-packages tr", "rs => rs.map(r => r.dataset.package)")
    assert names == list(exp.environment["packages"])
    assert page.inner_text("#environment-packages tr[data-package='orjson'] td:last-child") == \
        exp.environment["packages"]["orjson"]


def test_a_run_without_either_shows_neither(logged, page):
    """system_metrics=False and capture_environment=False: no System group and no Environment panel."""
    base_url, _, bare, _ = logged
    page.goto(f"{base_url}/#/exp/{bare.experiment_id}")
    page.wait_for_function("document.querySelectorAll('.chart[data-state=ready]').length === 1")
    page.wait_for_selector("#system[data-state=ready]", state="attached")  # its names and environment are in
    assert page.eval_on_selector("#system", "s => s.children.length") == 0
    assert page.eval_on_selector("#environment", "s => s.children.length") == 0


def test_an_environment_with_odd_types_still_shows_its_panel(logged, page):
    """An environment is whatever a client PUT: a numeric git commit, a command that is a string, packages as a list
    must not hide the panel (``git.commit.slice`` threw on a number and the whole panel was lost)."""
    import urllib.request

    base_url, _, bare, _ = logged
    odd = {"git": {"commit": 1234567890123, "branch": 7, "dirty": True}, "command": "python train.py",
           "python": {"version": 3.11}, "packages": ["numpy"], "captured_at": 1.7e9}
    request = urllib.request.Request(f"{base_url}/api/v1/experiments/{bare.experiment_id}/environment",
                                     data=json.dumps(odd).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()
    try:
        page.goto(f"{base_url}/#/exp/{bare.experiment_id}")
        page.wait_for_selector("#environment-panel", timeout=20000)
        page.click("#environment-panel > summary")
        assert "1234567890" in page.inner_text("#environment-panel > summary")
        assert page.inner_text("#environment-panel tr[data-key='git commit']").endswith("1234567890123")
        assert "python train.py" in page.inner_text("#environment-panel tr[data-key='command']")
    finally:  # the module's other tests expect the bare run without an environment
        urllib.request.urlopen(urllib.request.Request(
            f"{base_url}/api/v1/experiments/{bare.experiment_id}/environment", data=b"{}", method="PUT",
            headers={"Content-Type": "application/json"}), timeout=10).close()
