"""The dashboard through a load balancer: two server hosts on one PostgreSQL and one S3 bucket behind the
round-robin proxy (``server_hosts`` in tests/conftest.py), so the page's consecutive requests (assets, GraphQL, file
downloads, live polls) are answered by alternate hosts."""
from __future__ import annotations

import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from dashboard_seed import Server, seed_demo  # noqa: E402


def test_experiment_page_through_the_balancer_draws_and_follows_a_live_run(server_hosts, page):
    """Seeded through the proxy (writes land on both hosts), opened through it: charts, parameters, logs, a file
    stored in the bucket by one host and previewed through the other; then a live run written through host A only
    shows its new points and its end on the page, whose polls the proxy spreads over both hosts."""
    (host_a, _host_b), proxy = server_hosts
    seeded = seed_demo(Server(proxy.url), steps=60)
    page.goto(f"{proxy.url}/#/exp/{seeded['resnet-lr0.01'].id}")
    page.wait_for_function("document.querySelectorAll('.chart[data-state=ready]').length === 5")
    assert page.eval_on_selector('.chart[data-metric="val.loss"]', "c => c.data[0].y.length") == 6
    assert "ResNet-50 sweep" in page.inner_text("#readme")
    page.wait_for_selector("#log-lines :text('warm-up skipped')")
    page.click('#files tr[data-path="plots/confusion.png"] button')
    page.wait_for_function("(() => { const i = document.querySelector('#file-preview img');"
                           " return i && i.naturalWidth === 96; })()")

    live = seeded["resnet-live"]
    live.server = Server(host_a)  # from now on every write reaches one host; the page reads through both
    page.goto(f"{proxy.url}/#/exp/{live.id}")
    page.wait_for_function("document.querySelectorAll('.chart[data-state=ready]').length === 5")
    page.wait_for_selector("#live-indicator:not([hidden])")
    for last in (39, 49):
        live.metrics([(step, {"train.loss": 0.5, "train.acc": 0.8}) for step in range(last - 9, last + 1)])
        page.wait_for_function("Math.max(...document.querySelector('.chart[data-metric=\"train.loss\"]')"
                               f".data[0].x) === {last}")
    live.finish("COMPLETED")
    page.wait_for_selector("#exp-header .status-COMPLETED")
    page.wait_for_selector("#live-indicator", state="hidden")
    assert all(count > 10 for count in proxy.served.values()), proxy.served
    assert not [key for key in proxy.statuses if key[2] >= 500], proxy.statuses
