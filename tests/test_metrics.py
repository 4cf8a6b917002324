import json
import math
import os

import numpy as np
import pytest


def test_log_and_read(make_exp):
    """Logged rows come back in order with step, timestamp and metrics."""
    exp = make_exp()
    exp.metrics.log(step=1, loss=0.5, accuracy=0.8)
    exp.metrics.log(step=2, loss=0.4, accuracy=0.85)
    rows = exp.metrics.read()
    assert [(r["step"], r["metrics"]) for r in rows] == [(1, {"loss": 0.5, "accuracy": 0.8}), (2, {"loss": 0.4, "accuracy": 0.85})]
    assert all(isinstance(r["timestamp"], float) for r in rows)


def test_line_format(make_exp):
    """metrics.jsonl lines are exactly ``{"timestamp","step","metrics"}``."""
    exp = make_exp()
    exp.metrics.log(gpu_memory=8.5)
    exp.flush()
    with open(os.path.join(exp.local_path, "metrics.jsonl")) as f:
        line = json.loads(f.readline())
    assert list(line) == ["timestamp", "step", "metrics"] and line["step"] is None and line["metrics"] == {"gpu_memory": 8.5}


def test_nonfinite_round_trip(make_exp):
    """NaN, +inf and -inf survive the JSONL file and come back as floats."""
    exp = make_exp()
    exp.metrics.log(step=0, a=float("nan"), b=math.inf, c=-math.inf, d=np.float32("nan"))
    m = exp.metrics.read()[0]["metrics"]
    assert math.isnan(m["a"]) and m["b"] == math.inf and m["c"] == -math.inf and math.isnan(m["d"])
    with open(os.path.join(exp.local_path, "metrics.jsonl")) as f:
        assert '"NaN"' in f.read()  # valid JSON, documented spelling


def test_special_values_inside_a_long_batch(make_exp):
    """Non-finite, None, numpy and huge values amid thousands of plain rows: every row is written exactly."""
    exp = make_exp()
    specials = {700: {"loss": math.nan}, 1500: {"loss": None}, 2100: {"loss": np.float32(0.5)},
                2500: {"loss": -math.inf}, 2900: {"loss": 2**70}, 3100: {"nullity": 1.0}}
    for i in range(3500):
        exp.metrics.log(step=i, **specials.get(i, {"loss": i / 8}))
    rows = exp.metrics.read()
    assert [r["step"] for r in rows] == list(range(3500))
    for i, row in enumerate(rows):
        expected = specials.get(i, {"loss": i / 8})
        got = row["metrics"]
        assert list(got) == list(expected)
        if i == 700:
            assert math.isnan(got["loss"])
        else:
            assert got == {k: float(v) if isinstance(v, np.floating) or v == 2**70 else v for k, v in expected.items()}


def test_numpy_and_python_types(make_exp):
    """numpy scalars, 0-d and 1-element arrays, ints and bools are accepted and converted."""
    exp = make_exp()
    exp.metrics.log(step=np.int64(3), a=np.float64(0.25), b=np.int32(7), c=np.array(1.5), d=np.array([2.0]), e=True, f=10**20)
    row = exp.metrics.read()[0]
    assert row["step"] == 3
    assert row["metrics"] == {"a": 0.25, "b": 7, "c": 1.5, "d": 2.0, "e": True, "f": 1e20}


def test_array_overwritten_after_log(make_exp):
    """An array the caller overwrites after logging keeps its logged value."""
    exp = make_exp()
    a = np.array([1.0])
    exp.metrics.log(step=0, x=a)
    a[0] = 99.0
    assert exp.metrics.read()[0]["metrics"]["x"] == 1.0


def test_bad_values_raise_typeerror_naming_key(make_exp):
    """A non-numeric value raises TypeError naming the key; nothing already logged is lost."""
    exp = make_exp()
    exp.metrics.log(step=0, loss=1.0)
    with pytest.raises(TypeError, match="loss2="):
        exp.metrics.log(step=1, loss2="high")
    with pytest.raises(TypeError, match="x="):
        exp.metrics.log(step=1, x=np.zeros(3))
    with pytest.raises(TypeError, match="step="):
        exp.metrics.log(step="one", y=1.0)
    assert [r["metrics"] for r in exp.metrics.read()] == [{"loss": 1.0}]


def test_namespaces(make_exp):
    """``exp.metrics("train")`` prefixes metric names with ``train.``."""
    exp = make_exp()
    exp.metrics("train").log(step=1, loss=0.5, accuracy=0.8)
    exp.metrics("val").log(step=1, loss=0.6)
    rows = exp.metrics.read()
    assert rows[0]["metrics"] == {"train.loss": 0.5, "train.accuracy": 0.8} and rows[1]["metrics"] == {"val.loss": 0.6}
    assert [r["metrics"] for r in exp.metrics("val").read()] == [{"val.loss": 0.6}]


@pytest.mark.parametrize("how,expected", [("mean", 2.0), ("sum", 6.0), ("min", 1.0), ("max", 3.0), ("last", 3.0)])
def test_collect_flush_aggregations(make_exp, how, expected):
    """``collect`` + ``flush(_aggregation=...)`` logs one aggregated row with the extra metrics."""
    exp = make_exp()
    for v in (1.0, 2.0, 3.0):
        exp.metrics.collect(loss=v)
    exp.metrics.flush(_aggregation=how, step=7, learning_rate=0.1)
    assert exp.metrics.read() == [dict(exp.metrics.read()[0], step=7, metrics={"loss": expected, "learning_rate": 0.1})]


def test_collect_in_namespace_shared_between_handles(make_exp):
    """``exp.metrics("train")`` called twice shares the collect buffer."""
    exp = make_exp()
    for v in (1, 2, 3, 4):
        exp.metrics("train").collect(loss=v, acc=v / 10)
    exp.metrics("train").flush(_aggregation="mean", step=0)
    assert exp.metrics.read()[0]["metrics"] == {"train.loss": 2.5, "train.acc": 0.25}


def test_flush_uses_last_collected_step_and_empties_buffer(make_exp):
    """Without ``step`` the last collected step is used; a second flush logs nothing."""
    exp = make_exp()
    exp.metrics.collect(step=4, loss=1.0)
    exp.metrics.collect(step=5, loss=3.0)
    exp.metrics.flush()
    exp.metrics.flush()
    rows = exp.metrics.read()
    assert len(rows) == 1 and rows[0]["step"] == 5 and rows[0]["metrics"] == {"loss": 2.0}


def test_flush_rejects_unknown_aggregation(make_exp):
    """An unknown aggregation is a ValueError naming ``_aggregation``; the collected values are kept."""
    exp = make_exp()
    exp.metrics.collect(loss=1.0)
    with pytest.raises(ValueError, match="_aggregation"):
        exp.metrics.flush(_aggregation="median")
    exp.metrics.flush(_aggregation="max")
    assert exp.metrics.read()[0]["metrics"] == {"loss": 1.0}


def test_many_rows_exact(make_exp):
    """200k rows across several batches arrive exactly once, in order."""
    exp = make_exp()
    for i in range(200_000):
        exp.metrics.log(step=i, v=i * 0.5)
    rows = exp.metrics.read()
    assert [r["step"] for r in rows] == list(range(200_000))
    assert rows[-1]["metrics"]["v"] == 199_999 * 0.5


def test_caller_never_touches_disk(make_exp, monkeypatch):
    """``metrics.log`` performs no write/open on the calling thread: the writer thread does all I/O."""
    import threading

    exp = make_exp()
    exp.metrics.log(step=-1, loss=0.0)
    exp.flush()
    caller = threading.get_ident()
    io_on_caller = []
    real_write, real_open = os.write, os.open

    def spy_write(fd, data):
        if threading.get_ident() == caller:
            io_on_caller.append("write")
        return real_write(fd, data)

    def spy_open(*args, **kwargs):
        if threading.get_ident() == caller:
            io_on_caller.append("open")
        return real_open(*args, **kwargs)

    def spy_writev(fd, buffers):
        if threading.get_ident() == caller:
            io_on_caller.append("writev")
        return real_writev(fd, buffers)

    from ml_dash.client.sinks import jsonl

    real_writev = jsonl._writev
    monkeypatch.setattr(os, "write", spy_write)
    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(jsonl, "_writev", spy_writev)
    for i in range(50_000):
        exp.metrics.log(step=i, loss=0.5, acc=0.75, lr=0.001)
    monkeypatch.undo()
    assert io_on_caller == []
    assert len(exp.metrics.read()) == 50_001


def test_a_name_longer_than_the_servers_limit_never_reaches_the_file(make_exp, caplog):
    """Names are limited to MAX_NAME_LENGTH (the server's limit). exp.metrics(namespace) and flush() refuse longer ones
    at the call; log() and collect() leave the check to the writer (free for the caller), which drops the metric with
    one WARNING and keeps the rest of the row."""
    from ml_dash.format.limits import MAX_NAME_LENGTH

    exp = make_exp()
    exp.run()
    train = exp.metrics("train")
    with pytest.raises(ValueError, match=r"metrics.flush: the metric name 'train.zzz.*is 257 characters.*limited to 256"):
        train.flush(**{"z" * 251: 1.0})  # "train." + 251 characters
    with pytest.raises(ValueError, match="namespace"):
        exp.metrics("n" * 256)
    with caplog.at_level("WARNING", logger="ml_dash"):
        exp.metrics.log(step=0, **{"x" * MAX_NAME_LENGTH: 1.0})  # exactly the limit is fine
        for step in (1, 2):
            exp.metrics.log(step=step, loss=1.0, **{"y" * 300: 1.0})
        train.log(step=3, **{"z" * 251: 1.0, "ok": 2.0})
        train.collect(**{"z" * 251: 1.0})
        train.flush(step=4)
        exp.complete()
    rows = exp.metrics.read()
    assert [(row["step"], sorted(row["metrics"])) for row in rows] == [
        (0, ["x" * MAX_NAME_LENGTH]), (1, ["loss"]), (2, ["loss"]), (3, ["train.ok"])]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("characters long; names are limited to 256" in w for w in warnings)
