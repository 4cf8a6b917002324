"""MLDashCallback with a real transformers Trainer on CPU: a tiny BERT built from a config, nothing downloaded."""
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")  # the Trainer needs it

from ml_dash.integrations.transformers import MLDashCallback, rewrite_logs  # noqa: E402
from ml_dash.testing import read_run  # noqa: E402


class Random(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 64, (n, 8), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(8, dtype=torch.long), "labels": self.labels[i]}


def test_rewrite_logs_as_hf_callbacks_do():
    assert rewrite_logs({"eval_loss": 1, "loss": 2, "test_acc": 3, "learning_rate": 4}) == {
        "eval/loss": 1, "train/loss": 2, "test/acc": 3, "train/learning_rate": 4}


def test_trainer_logs_losses_eval_metrics_learning_rate_and_parameters(root, tmp_path):
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=8,
        per_device_eval_batch_size=8, learning_rate=1e-3, logging_steps=1, eval_strategy="epoch",
        save_strategy="epoch", report_to=[], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
        run_name="tiny-bert")
    callback = MLDashCallback(namespace="alice", workspace="nlp", local_root=root, log_checkpoints=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Random(32, 0), eval_dataset=Random(16, 1),
                                   callbacks=[callback])
    trainer.train()
    exp = callback.experiment
    assert exp.prefix.startswith("tiny-bert/")  # the run name, then the time and a random suffix
    run = read_run(exp.local_path)
    assert run["meta"]["status"] == "completed"
    rows = run["metrics"]
    loss = [r for r in rows if "train/loss" in r["metrics"]]
    assert [r["step"] for r in loss] == list(range(1, 9))  # 4 steps per epoch, logged each step
    assert all("train/learning_rate" in r["metrics"] for r in loss)
    evals = [r for r in rows if "eval/loss" in r["metrics"]]
    assert [r["step"] for r in evals] == [4, 8] and all("eval/runtime" in r["metrics"] for r in evals)
    assert any("train/train_runtime" in r["metrics"] for r in rows)
    params = run["params"]
    assert params["args"]["learning_rate"] == 1e-3 and params["args"]["num_train_epochs"] == 2
    assert params["model"]["hidden_size"] == 16 and params["model"]["model_type"] == "bert"
    saved = exp.files("checkpoints").list()
    assert "checkpoint-4/config.json" in saved and "checkpoint-8/trainer_state.json" in saved


class _State:
    def __init__(self, zero, step=0):
        self.is_world_process_zero = zero
        self.global_step = step


def test_other_processes_log_nothing(root):
    args = transformers.TrainingArguments(output_dir=os.path.join(root, "out"), report_to=[], use_cpu=True)
    callback = MLDashCallback(namespace="a", workspace="b", prefix="c", local_root=root)
    callback.on_train_begin(args, _State(False), None)
    callback.on_log(args, _State(False, 1), None, logs={"loss": 1.0})
    callback.on_train_end(args, _State(False), None)
    assert callback.experiment is None and not os.path.exists(os.path.join(root, "a"))


def test_a_given_experiment_keeps_its_run_and_parameters(root):
    from ml_dash import Experiment

    exp = Experiment(namespace="a", workspace="b", prefix="mine", local_root=root)
    exp.params.set(mine=1)
    args = transformers.TrainingArguments(output_dir=os.path.join(root, "out"), report_to=[], use_cpu=True)
    callback = MLDashCallback(experiment=exp)
    with exp.run():
        callback.on_train_begin(args, _State(True), None)
        callback.on_log(args, _State(True, 2), None, logs={"loss": 0.5, "eval_acc": 0.75, "note": "x"})
        callback.on_train_end(args, _State(True), None)
        assert exp.status == "running"  # the callback leaves the run to its owner
    run = read_run(exp.local_path)
    assert run["meta"]["status"] == "completed" and run["params"]["mine"] == 1 and "args" in run["params"]
    assert run["metrics"][-1] == {**run["metrics"][-1], "step": 2, "metrics": {"train/loss": 0.5, "eval/acc": 0.75}}
