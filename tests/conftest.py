import os
import sys

import pytest

from ml_dash import Experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Console capture redirects fds 1 and 2, which pytest's own capture holds: in-process tests run without it (the
# capture's own tests run in child processes, tests/distributed). Fixtures that clear ML_DASH_* set it again.
os.environ["ML_DASH_CONSOLE"] = "0"


@pytest.fixture
def make_exp(tmp_path, monkeypatch):
    """Factory for experiments rooted in this test's tmp dir, isolated from the user's env vars."""
    for var in list(os.environ):
        if var.startswith(("ML_DASH_", "ML_LOGGER_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ML_DASH_CONSOLE", "0")

    def make(prefix="run", **kwargs):
        kwargs.setdefault("namespace", "alice")
        kwargs.setdefault("workspace", "proj")
        kwargs.setdefault("local_root", str(tmp_path / ".ml-logger"))
        return Experiment(prefix=prefix, **kwargs)

    return make


@pytest.fixture
def run_python(tmp_path):
    """Run a Python snippet in a fresh interpreter (cwd = tmp_path) and return the CompletedProcess."""
    import subprocess

    def run(code, timeout=60, env=None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
        return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=full_env)

    return run
