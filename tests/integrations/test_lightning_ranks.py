"""A Lightning DDP job (two processes on CPU, gloo): every rank has its own run of the job in rank 0's experiment
with its system metrics; metrics come from rank 0 unless ``log_all_ranks=True`` (docs/distributed.md)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("lightning.pytorch")
pytest.importorskip("torch")

from ml_dash.format.layout import rank_meta_path, stream_path  # noqa: E402

from .test_lightning import REPO  # noqa: E402

SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {repo!r}); sys.path.insert(0, {here!r})
    import lightning.pytorch as pl
    from test_lightning import Tiny, loader
    from ml_dash.integrations.lightning import MLDashLogger

    logger = MLDashLogger(namespace="alice", workspace="ddp", local_root={root!r}, log_all_ranks={all_ranks})
    t = pl.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=logger, log_every_n_steps=1,
                   enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                   num_sanity_val_steps=0)
    t.fit(Tiny(), loader(), loader(16))
    print("rank", t.global_rank, "done", flush=True)
''')


def _rows(path):
    try:
        with open(path, "rb") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _fit(tmp_path, all_ranks):
    root = str(tmp_path / "root")
    script = tmp_path / "ddp_ranks.py"
    script.write_text(SCRIPT.format(repo=REPO, here=os.path.dirname(os.path.abspath(__file__)), root=root,
                                    all_ranks=all_ranks))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env.update(OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", PL_DISABLE_FORK="1", ML_DASH_CONSOLE="0")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 done" in done.stdout and "rank 1 done" in done.stdout
    # no prefix given: rank 0 picked version_0 and rank 1 took it from the process group's store
    experiments = [d for d, _, files in os.walk(root) if any(f.startswith(".ml-logger.meta") for f in files)]
    assert experiments == [os.path.join(root, "alice", "ddp", "version_0")]
    return experiments[0]


def _metric_rows(directory, rank):
    return [r for r in _rows(stream_path(directory, "metrics", rank)) if "train_loss" in r.get("metrics", {})]


def test_every_rank_has_its_own_run_of_the_job_with_system_metrics_and_metrics_from_rank_zero(tmp_path):
    directory = _fit(tmp_path, all_ranks=False)
    metas = [json.load(open(os.path.join(directory, ".ml-logger.meta.json"))),
             json.load(open(rank_meta_path(directory, 1)))]
    assert [(m["status"], m["rank"], m["world_size"]) for m in metas] == [("completed", 0, 2), ("completed", 1, 2)]
    assert metas[0]["job_id"] == metas[1]["job_id"]  # one job, as rank 0 published it
    for rank in (0, 1):
        assert _rows(stream_path(directory, "system", rank)), f"rank {rank} has no system rows"
    assert len(_metric_rows(directory, 0)) == 4
    assert _metric_rows(directory, 1) == []  # metrics stay rank zero's by default


def test_log_all_ranks_logs_every_rank_metrics(tmp_path):
    directory = _fit(tmp_path, all_ranks=True)
    assert len(_metric_rows(directory, 0)) == 4 and len(_metric_rows(directory, 1)) == 4
