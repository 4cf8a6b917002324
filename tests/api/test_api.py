"""``ml_dash.Api``: the same calls give the same results from a server and from the local root of the same runs."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ml_dash import Api
from ml_dash.query import ApiError

FILTERS = [None, "params.lr < 0.05 and status = 'completed'", "tags contains 'baseline'", "prefix like 'resnet%'",
           "metrics.val/loss <= 0.5 or status = 'failed'", "params.lr = 'auto'", "directory = 'sweeps/a'",
           "params.model.layers >= 20 and params.model.dropout < 0.25"]
ORDERS = [None, "params.lr desc", "metrics.loss asc, prefix", "prefix desc"]
TIMES = ("started_at", "completed_at")


def _comparable(record) -> dict:
    fields = record.to_dict()
    for name in ("id", "path", *TIMES):
        fields.pop(name)
    return fields


@pytest.fixture(scope="module")
def apis(logged):
    base_url, root = logged
    return Api(local_root=root), Api(remote=base_url)


def test_same_experiments_from_server_and_local_root(apis):
    """Every filter × order selects the same experiments, in the same order, with the same fields."""
    local, remote = apis
    for text in FILTERS:
        for order in ORDERS:
            mine, theirs = local.experiments(filter=text, order_by=order), remote.experiments(filter=text, order_by=order)
            assert [_comparable(r) for r in mine] == [_comparable(r) for r in theirs], (text, order)
            assert mine.total == theirs.total == len(mine)
            for a, b in zip(mine, theirs):
                assert a.started_at == pytest.approx(b.started_at, abs=1e-3)
                assert a.completed_at == pytest.approx(b.completed_at, abs=5.0)
    assert len({tuple(r.prefix for r in local.experiments(filter=t)) for t in FILTERS}) >= 6
    [first] = remote.experiments(filter="prefix = 'resnet-1'")
    assert first.params == {"lr": 0.001, "model": {"layers": 10, "name": "resnet", "dropout": 0.0}}
    assert first.tags == ["baseline"] and first.notes == "notes of resnet-1" and first.status == "COMPLETED"
    assert first.last_metrics["loss"] == pytest.approx(1.0 / 200) and first.last_metrics["val/loss"] == 0.302
    limited = remote.experiments(order_by="prefix", limit=2)
    assert [r.prefix for r in limited] == ["mlp", "resnet-1"] and limited.total == 4


def test_to_pandas_one_row_per_experiment_with_flattened_columns(apis):
    """to_pandas() flattens params and last metrics into columns; both sources give equal frames."""
    local, remote = apis
    frames = [api.experiments(order_by="prefix").to_pandas().drop(columns=["id", *TIMES]) for api in apis]
    assert list(frames[0].columns[:3]) == ["namespace", "workspace", "directory"]
    for column in ("params.lr", "params.model.layers", "params.model.dropout", "metrics.loss", "metrics.val/loss"):
        assert column in frames[0].columns
    assert frames[0].equals(frames[1])
    assert list(frames[0]["params.model.layers"]) == [40, 10, 20, 30]


def test_history_full_fidelity_ranges_and_downsampling(apis):
    """history() is indexed by step with one column per metric, every point (NaN kept), equal from both sources;
    a step range cuts it; max_points keeps each bucket's extremes, the spike included."""
    local, remote = apis
    records = [api.experiments(filter="prefix = 'resnet-2'")[0] for api in apis]
    frames = [r.history() for r in records]
    assert frames[0].equals(frames[1])
    frame = frames[0]
    assert frame.index.name == "step" and list(frame.index) == list(range(200))
    assert list(frame.columns) == ["acc", "loss", "val/loss"]
    assert math.isnan(frame.loc[51, "val/loss"]) and math.isnan(frame.loc[50, "val/loss"])  # absent, NaN logged
    assert frame["val/loss"].notna().sum() == 99 and frame.loc[100, "val/loss"] == 9.0
    cut = [r.history(keys=["loss"], step_min=10, step_max=19) for r in records]
    assert cut[0].equals(cut[1]) and list(cut[0].index) == list(range(10, 20)) and list(cut[0].columns) == ["loss"]
    for record in records:
        small = record.history(keys="val/loss", max_points=10)
        assert len(small) <= 20 and small["val/loss"].max() == 9.0
        arrays = record.to_numpy(keys=["acc"])
        assert isinstance(arrays["step"], np.ndarray) and arrays["acc"][-1] == pytest.approx(199 / 200)


def test_logs_files_and_download(apis, tmp_path):
    """logs(), files() and download() agree between the sources."""
    local, remote = apis
    mine, theirs = (next(r for r in api.experiments() if r.prefix == "vit-1") for api in apis)
    assert [(e["level"], e["message"], e["context"]) for e in mine.logs()] == \
        [(e["level"], e["message"], e["context"]) for e in theirs.logs()] == \
        [("INFO", "epoch done", {"epoch": 1}), ("WARNING", "slow", {"gpu": 2})]
    assert [e["message"] for e in theirs.logs(level="warning", limit=5)] == ["slow"]
    assert mine.files() == theirs.files() == [{"path": "results.json", "size": mine.files()[0]["size"]}]
    a = mine.download("results.json", str(tmp_path / "a.json"))
    os.makedirs(tmp_path / "b")
    b = theirs.download("results.json", str(tmp_path / "b"))
    assert open(a, "rb").read() == open(b, "rb").read() and b.endswith("results.json")
    with pytest.raises(ValueError):
        mine.download("../../.ml-logger.meta.json", str(tmp_path / "x"))


def test_files_are_listed_in_natural_order(apis):
    """epoch_5 before epoch_9 before epoch_10 before epoch_100, from both sources (not "epoch_10" < "epoch_5")."""
    listings = [[f["path"] for f in next(r for r in api.experiments() if r.prefix == "mlp").files()] for api in apis]
    assert listings[0] == listings[1] == ["ckpt/epoch_5.txt", "ckpt/epoch_9.txt", "ckpt/epoch_10.txt",
                                          "ckpt/epoch_100.txt", "results.json"]


def test_delete_and_restore_on_both_sources(apis):
    """delete() hides an experiment from experiments() until restore(); include_deleted lists it."""
    for api in apis:
        record = next(r for r in api.experiments() if r.prefix == "mlp")
        record.delete()
        assert record.deleted_at is not None
        assert "mlp" not in [r.prefix for r in api.experiments()]
        assert "mlp" in [r.prefix for r in api.experiments(include_deleted=True)]
        record.restore()
        assert record.deleted_at is None and len(api.experiments()) == 4


def test_experiment_by_id_or_path(apis, logged):
    """experiment() finds a run by its server id on both sources, and locally by its path too."""
    local, remote = apis
    record = remote.experiments(filter="prefix = 'vit-1'")[0]
    assert local.experiment(record.id).prefix == remote.experiment(record.id).prefix == "vit-1"
    assert local.experiment("alice/vision/sweeps/a/vit-1").id == record.id
    with pytest.raises(LookupError):
        remote.experiment("0" * 32)


def test_bad_arguments_and_an_unreachable_server_are_clear_errors(apis, tmp_path):
    """A bad filter is a ValueError naming the position, before any read; a dead server is one ApiError line."""
    for api in apis:
        with pytest.raises(ValueError, match="at position 10"):
            api.experiments(filter="params.lr ~ 1")
        with pytest.raises(ValueError, match="limit"):
            api.experiments(limit=0)
    with pytest.raises(ValueError, match="remote"):
        Api(remote="localhost:1")
    from ml_dash.server.testing import free_port

    with pytest.raises(ApiError, match="cannot reach"):
        Api(remote=f"http://127.0.0.1:{free_port()}").experiments()
