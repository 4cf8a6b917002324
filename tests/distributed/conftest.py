"""Distributed jobs and console capture run in child processes: pytest captures fds 1 and 2 itself, and every rank
is a process of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from ml_dash.server.testing import running_server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
                 "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(name, None)
    env.update(PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""), ML_DASH_UPLOAD_TIMEOUT="60",
               ML_DASH_UPLOAD_INTERVAL="0.05", ML_DASH_RETRY_BASE="0.01", ML_DASH_RETRY_CAP="0.2",
               ML_DASH_SYSTEM_METRICS="0", ML_DASH_CAPTURE_ENVIRONMENT="0")
    env.update(extra)
    return env


def run_child(code: str, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env or child_env(), capture_output=True,
                          text=True, timeout=timeout)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def experiment_id(base_url: str, prefix: str) -> str:
    found = [e for e in get_json(f"{base_url}/api/v1/experiments")["experiments"] if e["prefix"] == prefix]
    assert len(found) == 1, found
    return found[0]["id"]


@pytest.fixture
def server(tmp_path):
    with running_server(tmp_path / "server-data") as url:
        yield url


@pytest.fixture
def crash_server(tmp_path):
    """A server that marks a run CRASHED after 1 s without a heartbeat (it checks every 0.25 s)."""
    with running_server(tmp_path / "server-data", args=["--crash-after", "1"]) as url:
        yield url
