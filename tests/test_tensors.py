"""Tensors and numpy arrays as metric values: exact values, and nothing on the calling thread that syncs a device."""
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SYNCING = ("item", "cpu", "numpy", "tolist")


@pytest.fixture
def sync_calls(monkeypatch):
    """Wrap Tensor.item/cpu/numpy/tolist; yields a list of (method, thread ident) for every call."""
    calls = []
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            calls.append((_name, threading.get_ident()))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return calls


def on_caller(calls):
    me = threading.get_ident()
    return [name for name, ident in calls if ident == me]


VALUES = [
    torch.tensor(0.1, dtype=torch.float32),
    torch.tensor([2.5e-8], dtype=torch.float32),
    torch.tensor(0.1, dtype=torch.float64),
    torch.tensor([[1 / 3]], dtype=torch.float64),
    torch.tensor(7, dtype=torch.int64),
    torch.tensor([-3], dtype=torch.int32),
    torch.tensor(200, dtype=torch.uint8),
    torch.tensor(True),
    torch.tensor([False]),
    torch.tensor(1.5, dtype=torch.bfloat16),
]


def expected(value):
    return value.reshape(()).item()


# Tensor calls that give up the GIL while they run: on the caller, each one can wait out the writer's switch interval.
GIL_RELEASING = ("clone", "detach", "item", "__float__", "__int__", "__bool__", "cpu", "numpy")


@pytest.fixture
def gil_releasing_calls(monkeypatch):
    """Wrap the tensor methods that release the GIL; yields the names of those called on this (the calling) thread."""
    calls, me = [], threading.get_ident()
    for name in GIL_RELEASING:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            if threading.get_ident() == me:
                calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return calls


def test_log_reads_cpu_tensors_without_releasing_the_gil(make_exp, gil_releasing_calls):
    """metrics.log reads a CPU tensor with tolist() alone on the caller: no clone, detach, item or float()."""
    exp = make_exp()
    expected_rows = []
    for i in range(50):
        loss = torch.randn((), requires_grad=True) * 2
        exp.metrics.log(step=i, loss=loss, acc=torch.tensor([i], dtype=torch.int64), w=torch.nn.Parameter(loss.data))
        expected_rows.append({"loss": loss.tolist(), "acc": i, "w": loss.tolist()})
    assert gil_releasing_calls == []
    assert [r["metrics"] for r in exp.metrics.read()] == expected_rows


def test_collect_and_flush_read_cpu_tensors_without_releasing_the_gil(make_exp, gil_releasing_calls):
    """collect + flush(_aggregation) with CPU tensors calls nothing on the caller that gives up the GIL."""
    exp = make_exp()
    for epoch in range(3):
        for b in range(20):
            exp.metrics.collect(loss=torch.tensor(float(b)), n=torch.tensor(b), ok=torch.tensor(b % 2 == 0))
        exp.metrics.flush(_aggregation="mean", step=epoch, lr=torch.tensor(0.5))
    assert gil_releasing_calls == []
    assert [r["metrics"] for r in exp.metrics.read()] == [{"loss": 9.5, "n": 9.5, "ok": 0.5, "lr": 0.5}] * 3


def test_values_round_trip_exactly(make_exp):
    """0-d and 1-element tensors of float32/float64/int/bool dtypes and numpy arrays come back exactly."""
    exp = make_exp()
    numpy_values = [np.array(0.1, dtype=np.float32), np.array([7], dtype=np.int16), np.array([[True]]),
                    np.array(1e300)]
    metrics = {f"t{i}": v for i, v in enumerate(VALUES)}
    metrics.update({f"n{i}": v for i, v in enumerate(numpy_values)})
    exp.metrics.log(step=0, **metrics)
    row = exp.metrics.read()[0]["metrics"]
    for i, v in enumerate(VALUES):
        assert row[f"t{i}"] == expected(v) and type(row[f"t{i}"]) is type(expected(v)), (i, v)
    for i, v in enumerate(numpy_values):
        assert row[f"n{i}"] == v.item() and type(row[f"n{i}"]) is type(v.item()), (i, v)


@pytest.mark.parametrize("how", ["mean", "sum", "min", "max", "last"])
def test_collected_tensors_aggregate_like_floats(make_exp, how):
    """Aggregating collected tensors gives exactly what aggregating their Python values gives."""
    exp = make_exp()
    g = torch.Generator().manual_seed(0)
    losses = torch.randn(37, generator=g, dtype=torch.float32)
    for i, loss in enumerate(losses):
        exp.metrics("t").collect(loss=loss, count=torch.tensor(i), flag=torch.tensor([i % 3 == 0]))
        exp.metrics("f").collect(loss=loss.item(), count=i, flag=i % 3 == 0)
    exp.metrics("t").flush(_aggregation=how, step=1)
    exp.metrics("f").flush(_aggregation=how, step=1)
    t_row, f_row = (r["metrics"] for r in exp.metrics.read())
    assert {k[2:]: v for k, v in t_row.items()} == {k[2:]: v for k, v in f_row.items()}


def test_collect_single_row_and_mixed_values(make_exp):
    """One collected tensor, and tensors mixed with floats under one key, aggregate correctly."""
    exp = make_exp()
    exp.metrics.collect(loss=torch.tensor([4.0]))
    exp.metrics.flush(_aggregation="sum", step=0)
    exp.metrics.collect(loss=torch.tensor(1.0))
    exp.metrics.collect(loss=3.0)
    exp.metrics.collect(loss=torch.tensor(5.0, dtype=torch.float64))
    exp.metrics.flush(_aggregation="mean", step=1)
    rows = exp.metrics.read()
    assert [r["metrics"]["loss"] for r in rows] == [4.0, 3.0]


def test_in_place_change_after_log_does_not_alter_logged_value(make_exp):
    """A CPU tensor changed in place after log()/collect() keeps its logged value."""
    exp = make_exp()
    t = torch.tensor(1.0)
    exp.metrics.log(step=0, x=t)
    exp.metrics.collect(x=t)
    t.add_(100.0)
    exp.metrics.flush(_aggregation="last", step=1)
    a = np.array([1.0])
    exp.metrics.log(step=2, y=a)
    a[0] = 100.0
    assert [r["metrics"] for r in exp.metrics.read()] == [{"x": 1.0}, {"x": 1.0}, {"y": 1.0}]


def test_a_queued_cpu_tensor_row_is_untracked_by_the_gc(make_exp, monkeypatch):
    """The row log() queues for CPU tensors holds their numbers only and is a dict the cyclic GC does not track."""
    import collections
    import gc

    from ml_dash.client import metrics as _metrics

    exp = make_exp()
    exp.metrics.log(step=-1, first=torch.tensor(0.0))  # the first tensor met takes the general path
    queue = collections.deque()
    monkeypatch.setattr(_metrics, "_Q", queue)  # the writer never sees these rows: nothing drains them early
    exp.metrics.log(step=0, loss=torch.tensor(0.25), acc=0.5)
    exp.metrics.log(step=1, loss=torch.tensor([0.75]), n=torch.tensor(3))
    rows = list(queue)
    assert [{k: v for k, v in row.items() if type(k) is str} for row in rows] == [
        {"loss": 0.25, "acc": 0.5}, {"loss": 0.75, "n": 3}]
    assert [gc.is_tracked(row) for row in rows] == [False, False]


def test_bad_tensors_are_rejected_on_the_caller(make_exp):
    """Tensors with more than one element or complex dtype raise TypeError naming the key."""
    exp = make_exp()
    with pytest.raises(TypeError, match="loss"):
        exp.metrics.log(loss=torch.zeros(2))
    with pytest.raises(TypeError, match="loss"):
        exp.metrics.collect(loss=torch.zeros(2, 2))
    with pytest.raises(TypeError, match="z"):
        exp.metrics.collect(z=torch.tensor(1 + 2j))


def test_tensors_in_log_context_and_params_are_read_by_the_writer(make_exp, sync_calls):
    """Tensors in a log line's context and in parameters are read on the writer thread and stored as numbers."""
    exp = make_exp()
    grad_norm = torch.tensor(0.25)
    exp.info("step done", grad_norm=grad_norm, per_layer=[torch.tensor([1.5, 2.0]), 3], nested={"t": torch.tensor(7)})
    exp.params.set(lr=torch.tensor(0.5, dtype=torch.float64), sched={"warmup": torch.tensor(100)})
    exp.params.update("model.scale", torch.tensor([0.125]))
    grad_norm.add_(1.0)  # changed in place after logging: the log keeps the logged value
    assert exp.flush()
    assert on_caller(sync_calls) == []
    assert exp.logs.read()[-1]["context"] == {"grad_norm": 0.25, "per_layer": [[1.5, 2.0], 3], "nested": {"t": 7}}
    assert exp.params.read() == {"lr": 0.5, "sched": {"warmup": 100}, "model": {"scale": 0.125}}


def test_complex_tensor_in_log_context_is_rejected_on_the_caller(make_exp):
    """A tensor with no JSON value raises TypeError naming the key; earlier lines are kept."""
    exp = make_exp()
    exp.info("before")
    with pytest.raises(TypeError, match="z="):
        exp.info("bad", z=torch.tensor(1 + 2j))
    assert [entry["message"] for entry in exp.logs.read()] == ["before"]


def test_importing_ml_dash_imports_nothing_heavy():
    """`import ml_dash` and logging plain numbers import none of numpy, torch, asyncio or aiohttp."""
    code = ("import sys, tempfile, ml_dash\n"
            "exp = ml_dash.Experiment('a', 'b', 'c', local_root=tempfile.mkdtemp())\n"
            "exp.metrics.log(step=0, x=1.0); exp.metrics.collect(y=2); exp.metrics.flush(); exp.flush()\n"
            "exp.params.set(lr=0.1); exp.info('hi', n=1); exp.files.save('text', 'a.txt'); exp.flush()\n"
            "print(sorted(m for m in ('numpy', 'torch', 'asyncio', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_never_sync_on_caller(make_exp, sync_calls):
    """CUDA tensors (default and side streams, changed in place afterwards): no sync on the caller, exact values."""
    exp = make_exp()
    side = torch.cuda.Stream()
    logged, collected = [], []
    a = torch.randn(2048, 2048, device="cuda")
    for i in range(100):
        with torch.cuda.stream(side if i % 2 else torch.cuda.current_stream()):
            loss = (a @ a).mean() / (i + 1)  # a real kernel: the copy is still in flight when log() returns
            exp.metrics.log(step=i, loss=loss, flag=loss > 0)
            exp.metrics.collect(loss=loss, n=torch.tensor([i], device="cuda"))
            logged.append(loss.clone())
            collected.append(loss.clone())
            loss.add_(1000.0)  # must not reach the logged value
    exp.metrics.flush(_aggregation="mean", step=100)
    caller_calls = on_caller(sync_calls)
    torch.cuda.synchronize()
    assert caller_calls == []
    rows = exp.metrics.read()
    assert [r["metrics"]["loss"] for r in rows[:100]] == [t.item() for t in logged]
    assert [r["metrics"]["flag"] for r in rows[:100]] == [t.item() > 0 for t in logged]
    values = [t.item() for t in collected]
    assert rows[100]["metrics"] == {"loss": math.fsum(values) / len(values), "n": 49.5}


def test_cpu_tensor_rows_are_written_exactly_like_float_rows(make_exp):
    """A row of CPU tensors gives the same JSONL bytes as the same row of Python numbers (non-finite values too)."""
    values = {"loss": 0.1, "nan": math.nan, "inf": -math.inf, "n": 7, "ok": True}
    as_tensors = {"loss": torch.tensor(0.1, dtype=torch.float64), "nan": torch.tensor(math.nan),
                  "inf": torch.tensor([-math.inf]), "n": torch.tensor(7), "ok": torch.tensor(True)}
    files = []
    for prefix, metrics in (("floats", values), ("tensors", as_tensors)):
        exp = make_exp(prefix)
        exp.metrics.log(step=3, **metrics)
        exp.metrics("val").log(step=4, **metrics)
        assert exp.flush()
        with open(os.path.join(exp.local_path, "metrics.jsonl"), "rb") as f:
            files.append([line.split(b',"step"', 1)[1] for line in f.read().splitlines()])  # past the timestamp
    assert files[0] == files[1]
    assert b'"nan":"NaN","inf":"-Infinity"' in files[1][0]


def test_a_tensor_subclass_is_logged_like_a_tensor(make_exp):
    """A torch.Tensor subclass from any module is accepted (and read by the writer), not refused as a non-number."""

    class Tagged(torch.Tensor):
        pass

    exp = make_exp()
    loss = torch.tensor(0.25).as_subclass(Tagged)
    exp.metrics.log(step=0, loss=loss)
    exp.metrics.collect(loss=loss)
    loss.add_(1.0)  # in place, after logging
    exp.metrics.flush(_aggregation="last", step=1)
    assert [r["metrics"]["loss"] for r in exp.metrics.read()] == [0.25, 0.25]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")  # deprecated in torch, still made
def test_a_tensor_tolist_cannot_read_is_still_logged(make_exp):
    """A 0-d quantized CPU tensor (tolist() raises for it) takes the general path: logged with its value, no error."""
    exp = make_exp()
    q = torch.quantize_per_tensor(torch.tensor(0.5), 0.1, 0, torch.quint8)
    exp.metrics.log(step=0, q=q, loss=0.25)
    assert exp.metrics.read()[0]["metrics"] == {"q": 0.5, "loss": 0.25}


def test_a_0d_complex_tensor_is_rejected_naming_its_key(make_exp):
    """A 0-d complex tensor beside plain values raises TypeError naming it; rows logged before are kept."""
    exp = make_exp()
    exp.metrics.log(step=0, loss=torch.tensor(1.0))
    with pytest.raises(TypeError, match="z="):
        exp.metrics.log(step=1, loss=0.5, z=torch.tensor(1 + 2j))
    assert [r["metrics"] for r in exp.metrics.read()] == [{"loss": 1.0}]


class Captured(torch.Tensor):
    """A subclass: not read on the caller (only torch.Tensor and Parameter are), so the writer reads its clone."""


@pytest.fixture
def writer_reads(monkeypatch):
    """Counts torch.stack calls and single-tensor reads (tensor_to_python) made by the writer thread; CPU tensors
    are stacked like a device's (on a GPU machine the same path reads CUDA clones)."""
    from ml_dash.client import tensors as _tensors

    monkeypatch.setattr(_tensors, "STACK_CPU", True)
    counts = {"stack": 0, "single": 0}
    real_stack, real_single = torch.stack, _tensors.tensor_to_python

    def stack(*args, **kwargs):
        counts["stack"] += 1
        return real_stack(*args, **kwargs)

    def single(*args, **kwargs):
        counts["single"] += 1
        return real_single(*args, **kwargs)

    monkeypatch.setattr(torch, "stack", stack)
    monkeypatch.setattr(_tensors, "tensor_to_python", single)
    return counts


def test_the_writer_reads_a_batchs_tensors_with_one_stack_per_dtype(make_exp, writer_reads):
    """Tensors left to the writer are read with one stacked copy per (device, dtype) per piece, values exact."""
    from ml_dash.client.pipeline.process import PIPELINE

    exp = make_exp()
    n = 1000
    with PIPELINE.writer_held():  # one batch: the counts below do not depend on when the writer wakes
        for i in range(n):
            exp.metrics.log(step=i, loss=torch.tensor(i / 7).as_subclass(Captured),
                            n=torch.tensor([i], dtype=torch.int32).as_subclass(Captured), lr=0.001)
    rows = exp.metrics.read()
    assert [r["metrics"] for r in rows] == [{"loss": torch.tensor(i / 7).item(), "n": i, "lr": 0.001} for i in range(n)]
    pieces = -(-n // 128)
    assert writer_reads["single"] == 0
    assert writer_reads["stack"] <= 2 * (pieces + n // 256)  # two dtypes, per piece or encoded chunk: not per value


def test_a_group_that_fails_to_stack_is_read_one_by_one(make_exp, writer_reads, monkeypatch):
    """If stacking a group fails, its tensors are read one at a time and every value still arrives."""
    def broken_stack(*args, **kwargs):
        raise RuntimeError("simulated device error")

    monkeypatch.setattr(torch, "stack", broken_stack)
    exp = make_exp()
    for i in range(10):
        exp.metrics.log(step=i, loss=torch.tensor(float(i)).as_subclass(Captured))
    assert [r["metrics"]["loss"] for r in exp.metrics.read()] == [float(i) for i in range(10)]


def test_an_unreadable_tensor_loses_only_its_own_value(make_exp, monkeypatch, caplog):
    """A tensor the device cannot give back drops that one value, with an ERROR; its row and the others are kept."""
    from ml_dash.client import tensors as _tensors

    real = _tensors.tensor_to_python

    def flaky(t, *args, **kwargs):
        if t.item() == 3.0:
            raise ValueError("could not read a tensor: simulated")
        return real(t, *args, **kwargs)

    monkeypatch.setattr(torch, "stack", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("device error")))
    monkeypatch.setattr(_tensors, "tensor_to_python", flaky)
    exp = make_exp()
    for i in range(5):
        exp.metrics.log(step=i, loss=torch.tensor(float(i)).as_subclass(Captured), acc=0.5)
    rows = exp.metrics.read()
    assert [r["metrics"].get("loss") for r in rows] == [0.0, 1.0, 2.0, None, 4.0]
    assert all(r["metrics"]["acc"] == 0.5 for r in rows)
    assert "a metric value was lost" in caplog.text
