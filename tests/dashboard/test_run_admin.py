"""The experiment page's tags, notes and delete/restore (run_admin.js) in a real headless Chromium."""
from __future__ import annotations

import json
import os
import urllib.request

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from ml_dash.server.testing import running_server  # noqa: E402


def _post(base_url, path, body):
    request = urllib.request.Request(base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def _record(base_url, experiment_id):
    query = "query($id: ID!) { experiment(id: $id) { tags notes deletedAt } }"
    return _post(base_url, "/graphql", {"query": query, "variables": {"id": experiment_id}})["data"]["experiment"]


def test_tags_notes_delete_and_restore_from_the_experiment_page(tmp_path, page):
    """Add and remove a tag, save notes, delete after a confirmation (a dismissed one deletes nothing), restore."""
    with running_server(tmp_path / "data") as base_url:
        experiment_id = _post(base_url, "/api/v1/experiments", {"namespace": "alice", "workspace": "vision",
                                                                "prefix": "admin"})["experiment_id"]
        page.goto(f"{base_url}/#/exp/{experiment_id}")
        page.fill("#tag-input", "baseline")
        page.click("#tag-add")
        page.wait_for_selector('.tag[data-tag="baseline"]')
        page.fill("#tag-input", "resnet")
        page.press("#tag-input", "Enter")
        page.wait_for_selector('.tag[data-tag="resnet"]')
        page.click('.tag[data-tag="baseline"] .tag-remove')
        page.wait_for_selector('.tag[data-tag="baseline"]', state="detached")
        page.fill("#notes-input", "lr too high")
        page.click("#notes-save")
        page.wait_for_function("document.querySelector('#run-admin .admin-status').textContent === 'saved'")
        assert _record(base_url, experiment_id) == {"tags": ["resnet"], "notes": "lr too high", "deletedAt": None}

        page.once("dialog", lambda dialog: dialog.dismiss())
        page.click("#delete")
        assert _record(base_url, experiment_id)["deletedAt"] is None  # the dialog was answered before click returned
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#delete")
        page.wait_for_selector("#deleted-notice")
        assert _record(base_url, experiment_id)["deletedAt"] is not None
        page.click("#restore")
        page.wait_for_selector("#delete")
        assert _record(base_url, experiment_id)["deletedAt"] is None
