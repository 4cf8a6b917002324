"""W&B habits through ``ml_dash.Api``: metrics logged without ``step=`` read back in log order, and each metric's
summary (last, min, max, count) for end-of-training numbers, equal from a server and from the local root."""
from __future__ import annotations

import math
import os

import pytest

from ml_dash import Api, Experiment
from ml_dash.client.upload.uploader import detach_all
from ml_dash.server.testing import running_server

from tests.api.conftest import UPLOAD_ENV


@pytest.fixture(scope="module")
def wandb_style(tmp_path_factory):
    """(local Api, remote Api) over one run that logs loss/acc without steps, a one-point train_runtime, a NaN and
    a stepped metric."""
    root = str(tmp_path_factory.mktemp("wandb-runs") / ".ml-logger")
    with pytest.MonkeyPatch.context() as patch:
        for var in list(os.environ):
            if var.startswith(("ML_DASH_", "ML_LOGGER_")):
                patch.delenv(var)
        patch.setenv("ML_DASH_CONSOLE", "0")  # pytest holds fds 1 and 2 (tests/conftest.py)
        for key, value in UPLOAD_ENV.items():
            patch.setenv("ML_DASH_" + key, value)
        with running_server(tmp_path_factory.mktemp("wandb-server")) as base_url:
            try:
                exp = Experiment(namespace="carol", workspace="hf", prefix="trainer", local_root=root, remote=base_url)
                exp.run()
                for i in range(40):
                    exp.metrics.log(loss=10.0 - i / 4, acc=i / 40)  # no step=: timestamp only
                exp.metrics.log(loss=math.nan)
                exp.metrics.log(step=3, lr=0.1)
                exp.metrics.log(step=7, lr=0.05)
                exp.metrics.log(train_runtime=123.5)
                exp.complete()
            finally:
                detach_all()
            yield Api(local_root=root), Api(remote=base_url)


def test_history_of_stepless_metrics_is_in_log_order_and_stable(wandb_style):
    """Points without a step keep their log order (the n-th loss beside the n-th acc), with a NaN index, the same
    on every call and from both sources."""
    for api in wandb_style:
        record = api.experiments()[0]
        first, second = record.history(keys=["loss", "acc"]), record.history(keys=["loss", "acc"])
        assert list(first["loss"][:40]) == [10.0 - i / 4 for i in range(40)]
        assert list(first["acc"][:40]) == [i / 40 for i in range(40)]
        assert math.isnan(first["loss"].iloc[40]) and math.isnan(first["acc"].iloc[40]) and len(first) == 41
        assert first.index.isna().all()
        assert first.equals(second) and list(first.index.isna()) == list(second.index.isna())
        mixed = record.history(keys=["lr", "loss"])
        assert list(mixed["lr"].dropna()) == [0.1, 0.05] and list(mixed.index[:2]) == [3, 7]
        assert list(mixed["loss"].dropna()) == [10.0 - i / 4 for i in range(40)]
    frames = [api.experiments()[0].history() for api in wandb_style]
    assert frames[0].equals(frames[1])


def test_summary_from_server_and_local_root(wandb_style):
    """summary(): last, finite min/max and count per metric; a one-point series is its own last/min/max."""
    local, remote = (api.experiments()[0].summary() for api in wandb_style)
    assert local.keys() == remote.keys() == {"acc", "loss", "lr", "train_runtime"}
    assert remote["train_runtime"] == {"last": 123.5, "min": 123.5, "max": 123.5, "count": 1}
    assert remote["lr"] == {"last": 0.05, "min": 0.05, "max": 0.1, "count": 2}
    assert math.isnan(remote["loss"]["last"]) and math.isnan(local["loss"]["last"])
    assert remote["loss"]["min"] == local["loss"]["min"] == 0.25 and remote["loss"]["max"] == 10.0
    assert remote["loss"]["count"] == local["loss"]["count"] == 41
    for name in ("acc", "lr", "train_runtime"):
        assert local[name] == remote[name], name
