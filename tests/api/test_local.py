"""``Api`` beyond the shared runs: a local root still being logged to, and a server that needs tokens."""
from __future__ import annotations

import json
import os
import urllib.request

import pytest

from ml_dash import Api
from ml_dash.query import ApiError
from ml_dash.server.testing import running_server


def test_a_second_listing_sees_what_was_logged_since_and_a_replaced_file(make_exp, tmp_path):
    """Last metrics follow appends between two listings of one Api, and start over when the file is replaced."""
    exp = make_exp("live")
    exp.run()
    exp.metrics.log(step=0, loss=1.0)
    exp.flush()
    api = Api(local_root=str(tmp_path / ".ml-logger"))
    [record] = api.experiments()
    assert record.last_metrics == {"loss": 1.0} and record.status == "RUNNING"
    exp.metrics.log(step=1, loss=0.5, acc=0.9)
    exp.flush()
    assert api.experiments()[0].last_metrics == {"acc": 0.9, "loss": 0.5}
    exp.complete()
    path = os.path.join(exp.local_path, "metrics.jsonl")
    with open(path, "w") as f:
        f.write('{"step": 0, "metrics": {"other": 3}}\n')
    assert api.experiments()[0].last_metrics == {"other": 3}
    assert api.experiments(filter="status = 'completed' and metrics.other = 3").total == 1


def test_remote_with_a_token_and_its_namespaces(tmp_path, monkeypatch):
    """token= (or ML_DASH_TOKEN) authenticates; a token limited to a namespace lists only it; none is one ApiError."""
    for var in list(os.environ):
        if var.startswith(("ML_DASH_", "ML_LOGGER_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ML_DASH_CONSOLE", "0")  # pytest holds fds 1 and 2 (tests/conftest.py)
    with running_server(tmp_path / "data", tokens=["admin", "bob=bob"]) as base_url:
        for namespace in ("alice", "bob"):
            request = urllib.request.Request(f"{base_url}/api/v1/experiments", method="POST", headers={
                "Content-Type": "application/json", "Authorization": "Bearer admin"},
                data=json.dumps({"namespace": namespace, "workspace": "w", "prefix": "p"}).encode())
            urllib.request.urlopen(request, timeout=30).close()
        assert sorted(r.namespace for r in Api(remote=base_url, token="admin").experiments()) == ["alice", "bob"]
        monkeypatch.setenv("ML_DASH_TOKEN", "bob")
        assert [r.namespace for r in Api(remote=base_url).experiments()] == ["bob"]
        monkeypatch.delenv("ML_DASH_TOKEN")
        with pytest.raises(ApiError, match="HTTP 401"):
            Api(remote=base_url).experiments()
