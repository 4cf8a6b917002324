"""Resuming from a real checkpoint (tiny models on CPU): the resumed run's points replace the earlier run's from the
checkpoint's global step on, one value per step (docs/branches.md)."""
import glob
import os

import pytest

torch = pytest.importorskip("torch")


def resolved(path, name):
    from ml_dash.format.branches import history_rows

    return [(r["step"], r["metrics"][name]) for r in history_rows(path) if name in r["metrics"]]


def test_lightning_fit_from_ckpt_path_resumes_at_its_global_step(root, tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from ml_dash.integrations.lightning import MLDashLogger
    from tests.integrations.test_lightning import Tiny, loader

    def fit(max_steps, ckpt_path=None, every=None):
        logger = MLDashLogger(namespace="a", workspace="b", prefix="resume", local_root=root)
        callbacks = [pl.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), every_n_train_steps=every,
                                                  save_top_k=-1)] if every else []
        trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=logger, log_every_n_steps=1,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                             enable_checkpointing=bool(every), callbacks=callbacks)
        trainer.fit(Tiny(lr=0.05), loader(64), ckpt_path=ckpt_path)
        return logger.log_dir

    fit(12, every=6)  # checkpoints at steps 6 and 12; the "crash" is that training goes on past the first
    first = [s for s, _ in resolved(os.path.join(root, "a", "b", "resume"), "train_loss")]
    checkpoint = [p for p in glob.glob(str(tmp_path / "ckpt" / "*.ckpt")) if "step=6" in p][0]
    path = fit(12, ckpt_path=checkpoint)
    rows = resolved(path, "train_loss")
    steps = [s for s, _ in rows]
    assert steps == sorted(set(steps)) and steps == first  # one value per step, the same steps
    from ml_dash.format.branches import history_rows

    superseded = [r["step"] for r in history_rows(path, superseded=True) if "train_loss" in r["metrics"]]
    assert superseded and min(superseded) >= 5 and superseded == [s for s in first if s >= min(superseded)]


def test_hf_trainer_resume_from_checkpoint_declares_its_global_step(root, tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from ml_dash.integrations.transformers import MLDashCallback
    from ml_dash.testing import read_run
    from tests.integrations.test_transformers import Random

    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)

    def train(resume=None):
        torch.manual_seed(0)
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=8, learning_rate=1e-3,
            logging_steps=1, save_strategy="epoch", report_to=[], use_cpu=True, disable_tqdm=True,
            dataloader_num_workers=0, run_name="tiny-bert")
        callback = MLDashCallback(namespace="alice", workspace="nlp", local_root=root)
        trainer = transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args,
                                       train_dataset=Random(32, 0), callbacks=[callback])
        trainer.train(resume_from_checkpoint=resume)
        return callback.experiment

    exp = train()  # steps 1..8, checkpoints at 4 and 8
    exp = train(resume=str(tmp_path / "out" / "checkpoint-4"))  # steps 5..8 again
    meta = read_run(exp.local_path)["meta"]
    assert meta["runs"][-1]["resume_step"] == 5  # checkpoint-4 holds steps 1..4 (logged before it was saved)
    rows = resolved(exp.local_path, "train/loss")
    assert [s for s, _ in rows] == list(range(1, 9))
    from ml_dash.format.branches import history_rows

    assert [r["step"] for r in history_rows(exp.local_path, superseded=True) if "train/loss" in r["metrics"]] == \
        [5, 6, 7, 8]
