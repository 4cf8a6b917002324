"""The alerts page (alerts_page.js) and a run's badge (alert_badges.js) in a real headless Chromium."""
from __future__ import annotations

import json
import os
import urllib.request

import msgpack
import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from ml_dash.server.testing import free_port, running_server  # noqa: E402


def _post(base_url, path, body, content_type="application/json"):
    data = json.dumps(body).encode() if content_type == "application/json" else msgpack.packb(body)
    request = urllib.request.Request(base_url + path, data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def test_rules_alerts_and_the_run_badge(tmp_path, page):
    with running_server(tmp_path / "data", args=["--alert-webhook-allow", "127.0.0.1/32"]) as base:
        rule = {"namespace": "alice", "name": "loss is NaN", "kind": "nonfinite", "params": {"metric": "loss"},
                "webhook": {"url": f"http://127.0.0.1:{free_port()}/down", "secret": "never-shown"}}
        made = _post(base, "/graphql", {"query": "mutation($r: JSON!) { createAlertRule(rule: $r) { id } }",
                                        "variables": {"r": rule}})
        assert "errors" not in made, made
        experiment_id = _post(base, "/api/v1/experiments", {"namespace": "alice", "workspace": "vision",
                                                            "prefix": "diverged"})["experiment_id"]
        batch = {"stream": "metrics", "stream_id": "s", "start": 0, "end": 1,
                 "events": [{"timestamp": 1.0, "step": 7, "metrics": {"loss": float("nan")}}]}
        _post(base, f"/api/v1/experiments/{experiment_id}/batches", batch, "application/msgpack")

        page.goto(f"{base}/#/alerts")
        page.wait_for_selector(f'[data-rule="{made["data"]["createAlertRule"]["id"]}"]')
        page.wait_for_selector("[data-alert]")
        text = page.inner_text("#recent-alerts")
        assert "loss" in text and "step 7" in text and "open" in text
        assert "never-shown" not in page.content()
        # The run's badge in the navigator, once its folders are open (the navigator reads a folder when it opens).
        page.click("#nav-tree li[data-key='ns:alice'] > .node")
        page.click("#nav-tree li[data-key='ws:alice/vision'] > .node")
        page.wait_for_selector(f'#nav-tree a[href="#/alerts?exp={experiment_id}"][data-alerts="1"]', state="attached")

        page.select_option("#alert-rule-form select[name=kind]", "threshold")
        page.fill("#alert-rule-form input[name=namespace]", "alice")
        page.fill("#alert-rule-form input[name=url]", "http://127.0.0.1:9/hook")
        page.fill("#alert-rule-form input[name=name]", "loss too high")
        page.click("#alert-rule-form button[type=submit]")
        page.wait_for_function("document.querySelectorAll('[data-rule]').length === 2")
        assert "loss too high" in page.inner_text("#alert-rules")
        page.click('[data-rule] button:text("disable")')
        page.wait_for_selector("[data-rule].muted")

        page.goto(f"{base}/#/alerts?exp={experiment_id}")
        page.wait_for_selector("[data-alert]")
        assert "Alerts of this run" in page.inner_text("#main")
