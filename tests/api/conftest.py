"""A real server and a few runs logged to it (and so to a local root too), shared by a module's Api tests."""
from __future__ import annotations

import math
import os

import pytest

from ml_dash import Experiment
from ml_dash.server.testing import running_server
from ml_dash.client.upload.uploader import detach_all

UPLOAD_ENV = {"UPLOAD_TIMEOUT": "30", "UPLOAD_INTERVAL": "0.05", "RETRY_BASE": "0.01", "RETRY_CAP": "0.1"}


def log_runs(root: str, remote: str | None) -> None:
    """Four runs: params (nested), metrics with a NaN, a spike and a metric logged at every other step, logs, a
    file, tags and notes; one fails, one is in a sub-directory."""
    specs = [("resnet-1", None, 0.001, ["baseline"], "completed"), ("resnet-2", None, 0.01, ["resnet"], "failed"),
             ("vit-1", "sweeps/a", 0.1, [], "completed"), ("mlp", None, "auto", ["baseline", "small"], "completed")]
    for i, (prefix, directory, lr, tags, end) in enumerate(specs):
        exp = Experiment(namespace="alice", workspace="vision", prefix=prefix, directory=directory, local_root=root,
                         remote=remote, tags=tags, readme=f"run {i}")
        exp.run()
        exp.params.set(lr=lr, model={"layers": 10 * (i + 1), "name": prefix.split("-")[0]})
        exp.params.update("model.dropout", 0.1 * i)
        for step in range(200):
            values = {"loss": 1.0 / (step + 1) + i, "acc": step / 200}
            if step % 2 == 0:
                values["val/loss"] = math.nan if step == 50 else (9.0 if step == 100 else 0.5 - step / 1000)
            exp.metrics.log(step=step, **values)
        exp.info("epoch done", epoch=1)
        exp.warning("slow", gpu=i)
        exp.files.save({"run": prefix}, "results.json")
        if prefix == "mlp":  # checkpoints whose plain string order is not their numeric one
            for epoch in (10, 5, 9, 100):
                exp.files.save(b"x" * epoch, f"ckpt/epoch_{epoch}.txt")
        exp.notes = f"notes of {prefix}"
        if end == "failed":
            exp.fail("diverged")
        else:
            exp.complete()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(base URL, local root) of four runs logged with remote= to a real server."""
    root = str(tmp_path_factory.mktemp("api-runs") / ".ml-logger")
    with pytest.MonkeyPatch.context() as patch:
        for var in list(os.environ):
            if var.startswith(("ML_DASH_", "ML_LOGGER_")):
                patch.delenv(var)
        patch.setenv("ML_DASH_CONSOLE", "0")  # pytest holds fds 1 and 2 (tests/conftest.py)
        for key, value in UPLOAD_ENV.items():
            patch.setenv("ML_DASH_" + key, value)
        with running_server(tmp_path_factory.mktemp("api-server")) as base_url:
            try:
                log_runs(root, base_url)
            finally:
                detach_all()
            yield base_url, root
