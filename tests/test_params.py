import pytest


def test_set_replaces(make_exp):
    """``set`` replaces everything set before."""
    exp = make_exp()
    exp.params.set(a=1, b=2)
    exp.params.set(c=3)
    assert exp.params.read() == {"c": 3}


def test_extend_deep_merges(make_exp):
    """``extend`` deep-merges, as in the spec example."""
    exp = make_exp()
    exp.params.set(model={"layers": 50})
    exp.params.extend(model={"dropout": 0.2})
    assert exp.params.read() == {"model": {"layers": 50, "dropout": 0.2}}


def test_update_dot_notation(make_exp):
    """``update`` sets nested keys with dot notation and creates missing parents."""
    exp = make_exp()
    exp.params.set(learning_rate=0.001, model={"layers": 50})
    exp.params.update("model.layers", 100)
    exp.params.update("learning_rate", 0.0001)
    exp.params.update("optim.beta.one", 0.9)
    assert exp.params.read() == {"learning_rate": 0.0001, "model": {"layers": 100}, "optim": {"beta": {"one": 0.9}}}


def test_log_is_alias_of_set(make_exp):
    """``log`` behaves like ``set``."""
    exp = make_exp()
    exp.params.set(a=1)
    exp.params.log(batch_size=64)
    assert exp.params.read() == {"batch_size": 64}


def test_read_replays_in_a_new_experiment(make_exp):
    """A new Experiment on the same prefix reads the same parameters from parameters.jsonl."""
    exp = make_exp()
    exp.params.set(lr=0.001, nested={"x": [1, 2]})
    exp.params.update("lr", 0.01)
    exp.flush()
    assert make_exp().params.read() == {"lr": 0.01, "nested": {"x": [1, 2]}}


def test_file_format(make_exp):
    """parameters.jsonl lines follow the spec's format."""
    import json
    import os

    exp = make_exp()
    exp.params.set(lr=0.001)
    exp.params.update("lr", 0.0001)
    exp.flush()
    with open(os.path.join(exp.local_path, "parameters.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert set(lines[0]) == {"timestamp", "operation", "data"} and lines[0]["operation"] == "set"
    assert lines[1]["operation"] == "update" and lines[1]["key"] == "lr" and lines[1]["value"] == 0.0001


def test_later_mutation_does_not_change_log(make_exp):
    """Mutating a dict after ``set`` does not change what was logged."""
    exp = make_exp()
    cfg = {"layers": 1}
    exp.params.set(model=cfg)
    cfg["layers"] = 999
    assert exp.params.read() == {"model": {"layers": 1}}


def test_numpy_values_are_converted(make_exp):
    """numpy scalars and arrays become plain JSON values."""
    import numpy as np

    exp = make_exp()
    exp.params.set(lr=np.float32(0.5), sizes=np.arange(3))
    assert exp.params.read() == {"lr": 0.5, "sizes": [0, 1, 2]}


def test_unserializable_value_names_key(make_exp):
    """A value that cannot be stored raises TypeError naming the key path; earlier params survive."""
    exp = make_exp()
    exp.params.set(ok=1)
    with pytest.raises(TypeError, match="params.model.fn"):
        exp.params.set(model={"fn": object()})
    with pytest.raises(ValueError, match="key"):
        exp.params.update("a..b", 1)
    assert exp.params.read() == {"ok": 1}


def test_a_parameter_or_metric_may_be_named_self(tmp_path):
    """``self`` is an ordinary name for a parameter, a metric or a log context key (found by tests/fuzz)."""
    from ml_dash import Experiment

    exp = Experiment(namespace="a", workspace="b", prefix="self-names", local_root=str(tmp_path))
    with exp.run():
        exp.params.set(self=1)
        exp.params.extend(self=2)
        exp.metrics.log(step=0, self=1.5)
        exp.metrics.collect(self=2.0)
        exp.metrics.flush(self=3.0)
        exp.logs.info("hello", self="ctx")
    assert exp.params.read() == {"self": 2}
    assert [row["metrics"] for row in exp.metrics.read()] == [{"self": 1.5}, {"self": 3.0}]
    assert exp.logs.read()[-1]["context"] == {"self": "ctx"}
