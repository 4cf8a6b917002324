"""The accelerate and Hugging Face adapters on a rank > 0 of a job (in-process: the job is named by ML_DASH_RANK,
ML_DASH_WORLD_SIZE and ML_DASH_JOB_ID, as a launcher's variables would): the rank has its own run of the job, with no
parameters and no metrics unless ``log_all_ranks=True``. A real two-process job is tested with Lightning
(test_lightning_ranks.py)."""
import json
import os
from types import SimpleNamespace

import pytest

from ml_dash.format.layout import rank_meta_path, stream_path


@pytest.fixture
def rank1(root, monkeypatch):
    monkeypatch.setenv("ML_DASH_RANK", "1")
    monkeypatch.setenv("ML_DASH_WORLD_SIZE", "2")
    monkeypatch.setenv("ML_DASH_JOB_ID", "job-9")
    monkeypatch.setenv("ML_DASH_SYSTEM_METRICS", "0")
    return root


def _rows(path):
    try:
        with open(path, "rb") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _rank1(directory):
    meta = json.load(open(rank_meta_path(directory, 1)))
    metrics = [r for r in _rows(stream_path(directory, "metrics", 1)) if r.get("metrics")]
    return meta, metrics, _rows(stream_path(directory, "parameters", 1))


@pytest.mark.parametrize("all_ranks", [False, True])
def test_accelerate_tracker_on_rank_one(rank1, all_ranks):
    pytest.importorskip("accelerate")
    from ml_dash.integrations.accelerate import MLDashTracker

    tracker = MLDashTracker(namespace="a", workspace="b", prefix="acc", local_root=rank1, log_all_ranks=all_ranks)
    tracker.start()
    tracker.store_init_configuration({"lr": 0.1})
    tracker.log({"loss": 1.0}, step=0)
    tracker.finish()
    directory = os.path.join(rank1, "a", "b", "acc")
    meta, metrics, params = _rank1(directory)
    assert (meta["status"], meta["rank"], meta["world_size"], meta["job_id"]) == ("completed", 1, 2, "job-9")
    assert params == []  # the experiment's parameters are rank 0's
    assert len(metrics) == (1 if all_ranks else 0)
    assert not os.path.exists(os.path.join(directory, ".ml-logger.meta.json"))  # rank 0's files untouched


@pytest.mark.parametrize("all_ranks", [False, True])
def test_transformers_callback_on_rank_one(rank1, all_ranks):
    pytest.importorskip("transformers")
    from ml_dash.integrations.transformers import MLDashCallback

    callback = MLDashCallback(namespace="a", workspace="b", prefix="hf", local_root=rank1, log_all_ranks=all_ranks)
    args = SimpleNamespace(output_dir=str(rank1), run_name=None, to_dict=lambda: {"lr": 0.1})
    state = SimpleNamespace(is_world_process_zero=False, global_step=0)
    callback.on_train_begin(args, state, None)
    state.global_step = 1
    callback.on_log(args, state, None, logs={"loss": 1.0})
    callback.on_train_end(args, state, None)
    meta, metrics, params = _rank1(os.path.join(rank1, "a", "b", "hf"))
    assert (meta["status"], meta["rank"], meta["job_id"]) == ("completed", 1, "job-9")
    assert params == []
    assert len(metrics) == (1 if all_ranks else 0)
