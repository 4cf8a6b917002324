"""MLDashLogger with a real Lightning Trainer on CPU: metrics, hyperparameters, status, checkpoints, DDP."""
import os
import subprocess
import sys
import textwrap

import pytest

pl = pytest.importorskip("lightning.pytorch")
torch = pytest.importorskip("torch")

from ml_dash.integrations.lightning import MLDashLogger  # noqa: E402
from ml_dash.testing import read_run  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Tiny(pl.LightningModule):
    def __init__(self, lr=0.1, model=None, fail_at=None):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at is not None and self.global_step == self.hparams.fail_at:
            raise RuntimeError("boom in training_step")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return torch.utils.data.DataLoader(data, batch_size=8)


def trainer(logger, **kwargs):
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=logger, log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def test_fit_logs_metrics_hyperparameters_and_completes(root):
    logger = MLDashLogger(namespace="alice", workspace="vision", prefix="tiny", local_root=root)
    trainer(logger).fit(Tiny(lr=0.1, model={"width": 4, "act": {"name": "relu"}}), loader(), loader(16))
    run = read_run(logger.log_dir)
    assert run["meta"]["status"] == "completed"
    assert run["params"]["lr"] == 0.1 and run["params"]["model"] == {"width": 4, "act": {"name": "relu"}}
    train = [r for r in run["metrics"] if "train_loss" in r["metrics"]]
    val = [r for r in run["metrics"] if "val_loss" in r["metrics"]]
    assert len(train) == 8 and [r["step"] for r in train] == list(range(8))  # 4 batches x 2 epochs
    assert len(val) == 2 and all(isinstance(r["metrics"]["val_loss"], float) for r in val)
    assert logger.log_dir == os.path.join(logger.save_dir, logger.name, logger.version)
    assert logger.name == "alice/vision" and logger.version == "tiny" and logger.save_dir == os.path.abspath(root)


def test_exception_in_training_step_fails_the_run(root):
    logger = MLDashLogger(namespace="alice", workspace="vision", prefix="boom", local_root=root)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(logger).fit(Tiny(fail_at=2), loader())
    meta = read_run(logger.log_dir)["meta"]
    assert meta["status"] == "failed" and "boom in training_step" in meta["error"]


def test_log_hyperparams_namespace_and_tensors_pass_through(root):
    from argparse import Namespace

    logger = MLDashLogger(namespace="a", workspace="b", prefix="c", local_root=root)
    logger.log_hyperparams(Namespace(lr=0.5, opt={"name": "adam", "betas": (0.9, 0.99)}, act=torch.nn.ReLU))
    logger.log_hyperparams({"extra": 1})
    logger.log_metrics({"loss": torch.tensor(0.25), "note": "text"}, step=3)
    logger.finalize("success")
    run = read_run(logger.log_dir)
    assert run["params"] == {"lr": 0.5, "opt": {"name": "adam", "betas": [0.9, 0.99]},
                             "act": str(torch.nn.ReLU), "extra": 1}
    assert run["metrics"][-1]["step"] == 3 and run["metrics"][-1]["metrics"] == {"loss": 0.25}
    assert run["meta"]["status"] == "completed"


def test_checkpoints_are_saved_under_files_checkpoints(root):
    from lightning.pytorch.callbacks import ModelCheckpoint

    logger = MLDashLogger(namespace="a", workspace="b", prefix="ckpt", local_root=root, log_checkpoints=True)
    ckpt = ModelCheckpoint(save_top_k=-1)
    trainer(logger, enable_checkpointing=True, callbacks=[ckpt]).fit(Tiny(), loader())
    saved = sorted(os.listdir(os.path.join(logger.log_dir, "files", "checkpoints")))
    assert saved == sorted(os.listdir(ckpt.dirpath)) == ["epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt"]
    assert ckpt.dirpath == os.path.join(logger.log_dir, "checkpoints")
    assert read_run(logger.log_dir)["meta"]["status"] == "completed"


DDP_SCRIPT = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {repo!r}); sys.path.insert(0, {here!r})
    import lightning.pytorch as pl
    from test_lightning import Tiny, loader
    from ml_dash.integrations.lightning import MLDashLogger

    logger = MLDashLogger(namespace="alice", workspace="ddp", prefix="two", local_root={root!r})
    t = pl.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=logger, log_every_n_steps=1,
                   enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                   num_sanity_val_steps=0)
    t.fit(Tiny(), loader(), loader(16))
    print("rank", t.global_rank, "done", flush=True)
''')


def test_ddp_on_cpu_two_processes_one_experiment(root, tmp_path):
    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT.format(repo=REPO, here=os.path.dirname(os.path.abspath(__file__)), root=root))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env.update(OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", PL_DISABLE_FORK="1")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 done" in done.stdout and "rank 1 done" in done.stdout  # both processes got to the end
    experiments = [d for d, _, files in os.walk(root) if ".ml-logger.meta.json" in files]
    assert experiments == [os.path.join(root, "alice", "ddp", "two")]
    run = read_run(experiments[0])
    assert run["meta"]["status"] == "completed"
    train_steps = [r["step"] for r in run["metrics"] if "train_loss" in r["metrics"]]
    assert train_steps == sorted(set(train_steps)) and len(train_steps) == 4  # 2 batches per rank x 2 epochs, once


def test_ranks_above_zero_get_a_stand_in_and_write_nothing(root, monkeypatch):
    from lightning.pytorch.utilities import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = MLDashLogger(namespace="a", workspace="b", prefix="c", local_root=root)
    exp = logger.experiment
    exp.metrics.log(loss=1.0)  # the stand-in swallows any chain of attributes and calls
    exp.params.set(lr=1)
    logger.log_hyperparams({"lr": 1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert not exp and not os.path.exists(root)
    assert logger.log_dir == os.path.join(os.path.abspath(root), "a", "b", "c")


def test_test_after_fit_is_a_new_run_in_the_same_directory(root):
    logger = MLDashLogger(namespace="a", workspace="b", prefix="fit-test", local_root=root)
    t = trainer(logger)
    model = Tiny()
    t.fit(model, loader())
    first = read_run(logger.log_dir)["meta"]["started_at"]
    t.validate(model, loader(8), verbose=False)
    run = read_run(logger.log_dir)
    assert run["meta"]["status"] == "completed" and run["meta"]["started_at"] != first
    assert sum("val_loss" in r["metrics"] for r in run["metrics"]) == 1


def test_top_k_checkpoints_are_copied_when_the_run_ends(root):
    from lightning.pytorch.callbacks import ModelCheckpoint

    logger = MLDashLogger(namespace="a", workspace="b", prefix="best", local_root=root, log_checkpoints=True)
    ckpt = ModelCheckpoint(monitor="val_loss", save_top_k=1)
    trainer(logger, enable_checkpointing=True, callbacks=[ckpt]).fit(Tiny(), loader(), loader(16))
    saved = os.listdir(os.path.join(logger.log_dir, "files", "checkpoints"))
    assert saved == [os.path.basename(ckpt.best_model_path)]
