"""MLDashTracker behind a real accelerate Accelerator on CPU."""
import pytest

accelerate = pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from ml_dash.integrations.accelerate import MLDashTracker  # noqa: E402
from ml_dash.testing import read_run  # noqa: E402


def test_accelerator_log_with_tracker(root):
    tracker = MLDashTracker(namespace="alice", workspace="acc", prefix="run-1", local_root=root)
    accelerator = accelerate.Accelerator(log_with=tracker, cpu=True)
    accelerator.init_trackers("project", config={"lr": 0.01, "model": {"width": 8}})
    assert accelerator.get_tracker("ml_dash").tracker is tracker.tracker is not None
    for step in range(3):
        accelerator.log({"loss": torch.tensor(1.0 / (step + 1)), "acc": 0.5 + step / 10, "note": "x"}, step=step)
    accelerator.end_training()
    run = read_run(tracker.tracker.local_path)
    assert run["meta"]["status"] == "completed"
    assert run["params"] == {"lr": 0.01, "model": {"width": 8}}
    assert [r["step"] for r in run["metrics"]] == [0, 1, 2]
    assert run["metrics"][1]["metrics"] == {"loss": 0.5, "acc": 0.6}
    assert tracker.name == "ml_dash" and tracker.requires_logging_directory is False
