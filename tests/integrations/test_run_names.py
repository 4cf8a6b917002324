"""Each run of a script is an experiment of its own by default; checkpoints are on disk once; accelerate's project
name is the workspace. Real Lightning / transformers / accelerate on CPU, tiny models from a config."""
import os

import pytest

torch = pytest.importorskip("torch")

from ml_dash.testing import read_run  # noqa: E402


def disk_bytes(top):
    """Bytes of the files below ``top``, each inode counted once (hard links share their bytes)."""
    seen, total = set(), 0
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def test_lightning_default_prefix_is_a_new_version_per_run(root):
    pytest.importorskip("lightning.pytorch")
    from ml_dash.integrations.lightning import MLDashLogger

    from .test_lightning import Tiny, loader, trainer

    dirs = []
    for _ in range(2):
        logger = MLDashLogger(namespace="alice", workspace="vision", local_root=root)
        trainer(logger).fit(Tiny(), loader())
        dirs.append(logger.log_dir)
        assert read_run(logger.log_dir)["meta"]["status"] == "completed"
    assert [os.path.basename(d) for d in dirs] == ["version_0", "version_1"]


def test_lightning_checkpoints_are_on_disk_once(root):
    pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    from ml_dash.integrations.lightning import MLDashLogger

    from .test_lightning import Tiny, loader, trainer

    logger = MLDashLogger(namespace="a", workspace="b", prefix="once", local_root=root, log_checkpoints=True)
    ckpt = ModelCheckpoint(save_top_k=-1)
    trainer(logger, enable_checkpointing=True, callbacks=[ckpt]).fit(Tiny(), loader())
    saved = os.path.join(logger.log_dir, "files", "checkpoints")
    assert sorted(os.listdir(saved)) == ["epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt"]
    checkpoints = disk_bytes(ckpt.dirpath)
    assert checkpoints > 0 and disk_bytes(saved) == checkpoints
    # the experiment directory holds the checkpoints' bytes once, not twice
    assert disk_bytes(logger.log_dir) < 2 * checkpoints
    with open(os.path.join(saved, "epoch=0-step=4.ckpt"), "rb") as f:
        assert f.read() == open(os.path.join(ckpt.dirpath, "epoch=0-step=4.ckpt"), "rb").read()


def test_transformers_default_prefix_is_unique_per_run(root, tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from ml_dash.integrations.transformers import MLDashCallback

    from .test_transformers import Random

    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    prefixes = []
    for _ in range(2):
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8, logging_steps=1,
            save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
        callback = MLDashCallback(namespace="alice", workspace="nlp", local_root=root)
        transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args,
                             train_dataset=Random(16, 0), callbacks=[callback]).train()
        prefixes.append(callback.experiment.prefix)
        assert [r["step"] for r in read_run(callback.experiment.local_path)["metrics"]
                if "train/loss" in r["metrics"]] == [1, 2]  # this run's rows only
    assert prefixes[0] != prefixes[1] and all(p.startswith("out/") for p in prefixes)


def test_accelerate_project_name_is_the_workspace(root):
    accelerate = pytest.importorskip("accelerate")
    from ml_dash.integrations.accelerate import MLDashTracker

    tracker = MLDashTracker(namespace="alice", local_root=root)
    accelerator = accelerate.Accelerator(log_with=tracker, cpu=True)
    accelerator.init_trackers("my-project", config={"lr": 0.1})
    accelerator.log({"loss": 1.0}, step=0)
    accelerator.end_training()
    exp = tracker.tracker
    assert exp.workspace == "my-project" and exp.prefix.startswith("run/")
    named = MLDashTracker(namespace="alice", workspace="mine", prefix="p", local_root=root)
    accelerator = accelerate.Accelerator(log_with=named, cpu=True)
    accelerator.init_trackers("ignored")
    accelerator.end_training()
    assert named.tracker.workspace == "mine"
