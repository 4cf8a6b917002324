import pytest


def test_log_levels_and_context(make_exp):
    """``logs.log`` and the level helpers write level, message and context."""
    exp = make_exp()
    exp.logs.log("Training started", level="INFO", epoch=0, lr=0.001)
    exp.logs.info("Epoch started", epoch=5, batches=100)
    exp.logs.warning("High memory usage", memory_gb=14.5, threshold_gb=16.0)
    exp.logs.error("Training failed", error="CUDA OOM", batch_size=128)
    exp.logs.debug("Gradient norm", grad_norm=2.3, step=1000)
    logs = exp.logs.read()
    assert [l["level"] for l in logs] == ["INFO", "INFO", "WARNING", "ERROR", "DEBUG"]
    assert logs[0] == {"timestamp": logs[0]["timestamp"], "level": "INFO", "message": "Training started",
                       "context": {"epoch": 0, "lr": 0.001}}


def test_level_is_case_insensitive_and_validated(make_exp):
    """``level="warning"`` is stored as WARNING; an unknown level is a ValueError naming ``level``."""
    exp = make_exp()
    exp.logs.log("x", level="warning")
    with pytest.raises(ValueError, match="level"):
        exp.logs.log("x", level="LOUD")
    assert exp.logs.read()[0]["level"] == "WARNING"


def test_bad_message_and_context(make_exp):
    """A non-str message or an unserializable context value raises TypeError naming it."""
    exp = make_exp()
    with pytest.raises(TypeError, match="message"):
        exp.logs.log(42)
    with pytest.raises(TypeError, match="handle="):
        exp.logs.info("x", handle=object())
    assert exp.logs.read() == []


def test_nested_context(make_exp):
    """Lists, dicts and numpy values in the context are stored as JSON."""
    import numpy as np

    exp = make_exp()
    exp.logs.info("shapes", shape=(3, 4), stats={"mean": np.float32(0.5)})
    assert exp.logs.read()[0]["context"] == {"shape": [3, 4], "stats": {"mean": 0.5}}
