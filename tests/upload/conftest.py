import json
import os
import urllib.request

import pytest

from ml_dash.client.upload.uploader import detach_all
from ml_dash.server.testing import running_server


@pytest.fixture
def server(tmp_path):
    """A real ml-dash server on loopback, with its data in this test's tmp dir; yields its base URL."""
    with running_server(tmp_path / "server-data") as url:
        yield url


@pytest.fixture
def remote_env(monkeypatch):
    """Fast, deterministic upload settings; returns a function to set more ML_DASH_* variables."""
    for var in list(os.environ):
        if var.startswith(("ML_DASH_", "ML_LOGGER_")):
            monkeypatch.delenv(var)
    defaults = {"CONSOLE": "0", "UPLOAD_TIMEOUT": "30", "UPLOAD_INTERVAL": "0.05", "RETRY_BASE": "0.01", "RETRY_CAP": "0.1"}
    for key, value in defaults.items():
        monkeypatch.setenv("ML_DASH_" + key, value)

    def set_env(**values):
        for key, value in values.items():
            monkeypatch.setenv("ML_DASH_" + key, str(value))

    yield set_env
    detach_all()


def get_json(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def server_view(base_url, experiment_id, metric="loss"):
    """What the server stored for one experiment: metric steps, params, log messages, files, runs."""
    api = f"{base_url}/api/v1/experiments/{experiment_id}"
    record = get_json(api)
    steps = get_json(f"{api}/metrics/{metric}")["steps"] if metric in record["metric_names"] else []
    return {"steps": steps, "params": record["params"], "runs": record["runs"],
            "logs": [entry["message"] for entry in get_json(f"{api}/logs")["logs"]],
            "files": {f["path"]: f["size"] for f in get_json(f"{api}/files")["files"]}}


def find_experiment_id(base_url, prefix):
    found = [e for e in get_json(f"{base_url}/api/v1/experiments")["experiments"] if e["prefix"] == prefix]
    assert len(found) == 1, found
    return found[0]["id"]
