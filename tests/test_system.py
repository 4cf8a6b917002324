"""The system-metrics sampler: rows in system.jsonl through the pipeline, on/off switches, stopping, fork."""
import logging
import os
import sys
import threading
import types

import orjson
import pytest

from ml_dash.client.run import probes as _system_probes
from ml_dash.client.run.probes import GpuProbe
from ml_dash.format.layout import STREAM_FILES
from ml_dash.testing import read_run


def system_rows(exp):
    with open(os.path.join(exp.local_path, STREAM_FILES["system"]), "rb") as f:
        return [orjson.loads(line) for line in f.read().splitlines()]


_EARLIER: set = set()  # samplers of runs other tests left open (they end at exit): not this test's


@pytest.fixture(autouse=True)
def _earlier_samplers():
    _EARLIER.clear()
    _EARLIER.update(threading.enumerate())


def sampler_threads():
    """This test's live sampler threads."""
    return [t for t in threading.enumerate() if t.name == "ml-dash-system" and t.is_alive() and t not in _EARLIER]


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "0.02")


def test_rows_reach_system_jsonl_in_the_metrics_row_format(make_exp, fast):
    """A run's samples land in system.jsonl as {timestamp, step: null, metrics}; metrics.jsonl is untouched."""
    exp = make_exp()
    with exp.run():
        assert exp._sampler.wait_for(3, timeout=30)
    rows = system_rows(exp)
    assert len(rows) >= 3
    for row in rows:
        assert set(row) == {"timestamp", "step", "metrics"} and row["step"] is None
        assert all(type(v) is float for v in row["metrics"].values())
    first, second = rows[0]["metrics"], rows[1]["metrics"]
    assert first["process_rss_mb"] > 1 and 0 <= first["memory_percent"] <= 100
    assert {"memory_used_mb", "process_threads"} <= first.keys()
    # The row after the first, one interval later, covers a period: CPU % and rates.
    assert {"cpu_percent", "process_cpu_percent"} <= second.keys()
    import psutil
    if psutil.net_io_counters() is not None:
        assert second["net_recv_mb_s"] >= 0 and second["net_sent_mb_s"] >= 0
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    assert not os.path.exists(os.path.join(exp.local_path, STREAM_FILES["metrics"]))
    assert read_run(exp.local_path)["system"] == rows and read_run(exp.local_path)["metrics"] == []


def test_turned_off_by_argument_or_environment(make_exp, monkeypatch, fast):
    """system_metrics=False or ML_DASH_SYSTEM_METRICS=0 start no sampler; the argument wins over the variable."""
    exp = make_exp("off", system_metrics=False)
    with exp.run():
        assert exp._sampler is None and not sampler_threads()
    monkeypatch.setenv("ML_DASH_SYSTEM_METRICS", "0")
    exp = make_exp("env-off")
    with exp.run():
        assert exp._sampler is None and not sampler_threads()
    exp = make_exp("arg-wins", system_metrics=True)
    with exp.run():
        assert exp._sampler.wait_for(1, timeout=30)
    assert system_rows(exp)


def test_bad_settings_name_what_is_wrong(make_exp, monkeypatch):
    """A non-bool argument is a TypeError naming it; a bad variable a ValueError naming the variable."""
    with pytest.raises(TypeError, match="system_metrics"):
        make_exp(system_metrics="yes")
    monkeypatch.setenv("ML_DASH_SYSTEM_METRICS", "maybe")
    with pytest.raises(ValueError, match="ML_DASH_SYSTEM_METRICS"):
        make_exp()
    monkeypatch.setenv("ML_DASH_SYSTEM_METRICS", "1")
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "0")
    with pytest.raises(ValueError, match="ML_DASH_SYSTEM_INTERVAL"):
        make_exp()


@pytest.mark.parametrize("end", ["complete", "fail"])
def test_stops_at_the_end_of_the_run_without_waiting_an_interval(make_exp, monkeypatch, end):
    """With an hour between samples, complete()/fail() still leave no sampler thread behind (an Event wait)."""
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "3600")
    exp = make_exp(end)
    exp.run()
    sampler = exp._sampler
    assert sampler.running.wait(30) and sampler.alive
    exp.complete() if end == "complete" else exp.fail("boom")
    assert not sampler.alive and exp._sampler is None
    assert sampler.samples == 2  # one at the start, one at the end; no interval waited


def test_a_run_shorter_than_the_interval_gets_a_first_and_a_last_sample(make_exp, monkeypatch):
    """A run that ends before the first interval still has two rows: one taken at its start, one at its end."""
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "3600")
    exp = make_exp()
    with exp.run():
        assert exp._sampler.wait_for(1, timeout=30)  # the start sample, long before an interval
        exp.metrics.log(loss=1.0)
    rows = system_rows(exp)
    assert len(rows) == 2
    assert rows[0]["timestamp"] <= rows[1]["timestamp"]
    assert all(row["metrics"]["process_rss_mb"] > 1 for row in rows)
    # Taken right after the probes' set-up, the first row has no CPU % (a few microseconds' 0 % or 100 %).
    assert "cpu_percent" not in rows[0]["metrics"] and "process_cpu_percent" not in rows[0]["metrics"]


def test_one_sampler_thread_per_run(make_exp, monkeypatch):
    """A nested run() and an adopted implicit run share the run's sampler; a second run gets a fresh one."""
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "3600")
    exp = make_exp()
    exp.metrics.log(loss=1.0)  # starts a run implicitly
    first = exp._sampler
    with exp.run():  # adopts it
        with exp.run():  # nested: the open run goes on
            assert exp._sampler is first and first.running.wait(30) and len(sampler_threads()) == 1
    assert not sampler_threads()
    with exp.run():
        assert exp._sampler is not first and exp._sampler.running.wait(30) and len(sampler_threads()) == 1
    assert not sampler_threads()


def test_a_run_ended_before_its_sampler_started_never_starts_one(make_exp, monkeypatch):
    """complete() right after run(): whether or not the starter thread got to the sampler, none is left running."""
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "3600")
    for i in range(20):
        exp = make_exp(f"quick-{i}")
        exp.run()
        sampler = exp._sampler
        exp.complete()
        assert not sampler.alive
    assert not sampler_threads()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_survives_fork(make_exp, fast):
    """A forked child has no sampler of its parent's run and can sample a run of its own; the parent keeps sampling."""
    parent = make_exp("parent")
    parent.run()
    assert parent._sampler.wait_for(1, timeout=30)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 1
        try:
            if not sampler_threads():
                child = make_exp("child")
                with child.run():
                    ok = child._sampler.wait_for(2, timeout=30)
                parent.complete()  # never ends the parent's run from a child
                code = 0 if ok and system_rows(child) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    before = parent._sampler.samples
    assert parent._sampler.wait_for(before + 2, timeout=30)
    parent.complete()
    assert parent.status == "completed" and len(system_rows(parent)) >= before + 2


def test_no_gpu_costs_at_most_one_debug_line(make_exp, fast, caplog, monkeypatch):
    """Without a usable NVML (this machine), samples carry no gpu.* names and say so once, at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="ml_dash")
    monkeypatch.setattr(_system_probes, "_NO_GPU", [])  # as in a fresh process
    for prefix in ("a", "b"):  # the second run neither retries NVML nor says it again
        exp = make_exp(prefix)
        with exp.run():
            assert exp._sampler.wait_for(3, timeout=30)
            if exp._sampler.gpu:
                pytest.skip("this machine has a GPU")
    gpu_lines = [r for r in caplog.records if "GPU" in r.getMessage() or "NVML" in r.getMessage()]
    assert len(gpu_lines) <= 1 and all(r.levelno == logging.DEBUG for r in gpu_lines)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    assert not any(name.startswith("gpu.") for row in system_rows(exp) for name in row["metrics"])


class _NvmlError(Exception):
    pass


def _simulated_nvml(calls):
    """An NVML with two GPUs, the second without a power sensor. CI has no GPU: this drives GpuProbe's own logic
    (names, units, a missing reading tried once) through the pynvml calls it makes."""
    memory = types.SimpleNamespace(used=2 * 1024 ** 3, total=8 * 1024 ** 3)

    def power(handle):
        calls.append(("power", handle))
        if handle == 1:
            raise _NvmlError("Not Supported")
        return 123_456  # milliwatts

    return types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, NVMLError=_NvmlError, nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=50 + h),
        nvmlDeviceGetMemoryInfo=lambda h: memory, nvmlDeviceGetTemperature=lambda h, sensor: 60 + h,
        nvmlDeviceGetPowerUsage=power)


def test_gpu_readings_per_device_and_a_missing_sensor_tried_once(monkeypatch):
    """Per GPU: utilisation, memory (MB and %), temperature and power in W; a sensor a GPU lacks is left out."""
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", _simulated_nvml(calls))
    monkeypatch.setattr(_system_probes, "_NO_GPU", [])
    probe = GpuProbe()
    assert probe.active
    rows = []
    for _ in range(3):
        row = {}
        probe.read(row)
        rows.append(row)
    assert rows[0] == {"gpu.0.utilization_percent": 50.0, "gpu.0.memory_used_mb": 2048.0, "gpu.0.memory_percent": 25.0,
                       "gpu.0.temperature_c": 60.0, "gpu.0.power_w": 123.456,
                       "gpu.1.utilization_percent": 51.0, "gpu.1.memory_used_mb": 2048.0, "gpu.1.memory_percent": 25.0,
                       "gpu.1.temperature_c": 61.0}
    assert rows[1] == rows[2] == rows[0]
    assert calls.count(("power", 1)) == 1 and calls.count(("power", 0)) == 3
    probe.close()
    assert not probe.active
