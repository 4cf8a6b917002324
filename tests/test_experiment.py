import json
import os
import textwrap

import pytest

from ml_dash import Experiment


def _meta(exp):
    with open(os.path.join(exp.local_path, ".ml-logger.meta.json")) as f:
        return json.load(f)


def test_quick_start_layout(make_exp, tmp_path):
    """The spec's quick start creates exactly the documented directory layout (docs/api.md), system.jsonl included:
    the sampler takes a first and a last sample even for a run shorter than its interval."""
    exp = make_exp("experiment-1", namespace="alice", workspace="my-project")
    with exp.run():
        exp.params.set(learning_rate=0.001, batch_size=32, epochs=100)
        for epoch in range(100):
            exp.metrics.log(step=epoch, loss=0.5 - epoch * 0.01, accuracy=0.5 + epoch * 0.005)
        exp.info("Training completed!")
        exp.files.save({"final": "results"}, "results.json")
    root = tmp_path / ".ml-logger" / "alice" / "my-project" / "experiment-1"
    assert sorted(os.listdir(root)) == [".ml-logger.meta.json", "files", "logs.jsonl", "metrics.jsonl", "parameters.jsonl",
                                        "system.jsonl"]
    assert os.listdir(root / "files") == ["results.json"]
    assert len(exp.metrics.read()) == 100


def test_directory_nests_experiment(make_exp, tmp_path):
    """``directory`` adds hierarchy between workspace and prefix."""
    exp = make_exp("run-001", namespace="alice", workspace="vision", directory="image-classification/resnet50/cifar10")
    assert exp.local_path == str(tmp_path / ".ml-logger/alice/vision/image-classification/resnet50/cifar10/run-001")
    assert exp.directory == "image-classification/resnet50/cifar10"


def test_context_manager_completes(make_exp):
    """``with exp.run()`` marks the run completed with both timestamps."""
    exp = make_exp(readme="ResNet experiment")
    with exp.run():
        assert _meta(exp)["status"] == "running"
    meta = _meta(exp)
    assert meta["status"] == "completed"
    assert meta["completed_at"] >= meta["started_at"]
    assert meta["readme"] == "ResNet experiment"
    assert meta["hostname"] and meta["namespace"] == "alice" and meta["prefix"] == "run"


def test_context_manager_fails_and_reraises(make_exp):
    """An exception inside the run marks it failed, records the error and propagates."""
    exp = make_exp()
    with pytest.raises(RuntimeError, match="boom"):
        with exp.run():
            exp.metrics.log(step=0, loss=1.0)
            raise RuntimeError("boom")
    meta = _meta(exp)
    assert meta["status"] == "failed" and "boom" in meta["error"]
    assert exp.metrics.read()[0]["metrics"] == {"loss": 1.0}


def test_decorator_pattern(make_exp):
    """``@exp.run`` wraps a function in a run and returns its value."""
    exp = make_exp()

    @exp.run
    def train(x):
        exp.metrics.log(step=0, x=x)
        return x * 2

    assert train(21) == 42
    assert _meta(exp)["status"] == "completed"


def test_direct_call_and_fail(make_exp):
    """``exp.run()`` then ``exp.fail(msg)``; a second end call changes nothing."""
    exp = make_exp()
    exp.run()
    exp.fail("diverged")
    exp.complete()
    assert _meta(exp)["status"] == "failed" and _meta(exp)["error"] == "diverged"


def test_properties(make_exp):
    """The spec's properties are readable."""
    exp = make_exp("p", experiment_id="exp_123")
    assert (exp.namespace, exp.workspace, exp.prefix, exp.remote, exp.experiment_id, exp.run_id) == ("alice", "proj", "p", None, "exp_123", None)


def test_env_vars_fill_missing(tmp_path, monkeypatch):
    """ML_LOGGER_NAMESPACE/WORKSPACE fill what the constructor omits."""
    monkeypatch.setenv("ML_LOGGER_NAMESPACE", "envns")
    monkeypatch.setenv("ML_LOGGER_WORKSPACE", "envws")
    monkeypatch.delenv("ML_LOGGER_REMOTE", raising=False)
    exp = Experiment(prefix="my-experiment", local_root=str(tmp_path))
    assert (exp.namespace, exp.workspace) == ("envns", "envws")


def test_argument_beats_env(tmp_path, monkeypatch):
    """An explicit argument wins over the environment."""
    monkeypatch.setenv("ML_LOGGER_NAMESPACE", "envns")
    monkeypatch.setenv("ML_LOGGER_WORKSPACE", "envws")
    assert Experiment(namespace="arg", prefix="x", local_root=str(tmp_path)).namespace == "arg"


def test_missing_identity_names_what_is_missing(tmp_path, monkeypatch):
    """Without env vars, the error names the missing arguments and the env vars to set."""
    for var in ("ML_LOGGER_NAMESPACE", "ML_LOGGER_WORKSPACE", "ML_DASH_NAMESPACE", "ML_DASH_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="namespace.*ML_DASH_NAMESPACE.*workspace.*ML_DASH_WORKSPACE"):
        Experiment(prefix="x", local_root=str(tmp_path))


@pytest.mark.parametrize("arg,value", [("prefix", "../evil"), ("prefix", "/abs"), ("namespace", "a/b"),
                                       ("directory", "a/../../x"), ("workspace", "w\x00"), ("prefix", "")])
def test_identity_cannot_escape_root(make_exp, arg, value):
    """Names that would leave the local root raise ValueError naming the argument."""
    kwargs = {arg: value}
    prefix = kwargs.pop("prefix", "ok")
    with pytest.raises(ValueError, match=arg):
        make_exp(prefix, **kwargs)


def test_logging_shortcuts(make_exp):
    """``exp.info/warning/error/debug`` write log lines with their levels and context."""
    exp = make_exp()
    exp.info("Epoch completed", epoch=5, loss=0.3)
    exp.warning("Memory usage high", usage_gb=15.2)
    exp.error("Training failed", error="CUDA out of memory")
    exp.debug("grad", norm=2.3)
    logs = exp.logs.read()
    assert [(l["level"], l["message"]) for l in logs] == [("INFO", "Epoch completed"), ("WARNING", "Memory usage high"),
                                                          ("ERROR", "Training failed"), ("DEBUG", "grad")]
    assert logs[0]["context"] == {"epoch": 5, "loss": 0.3}


def test_reopen_keeps_identity(make_exp):
    """A second Experiment on the same prefix picks up the readme and experiment_id from the meta file."""
    exp = make_exp(readme="first", experiment_id="exp_9")
    exp.run()
    exp.complete()
    again = make_exp()
    assert (again.readme, again.experiment_id) == ("first", "exp_9")


def _open_files_under(path):
    fd_dir = "/proc/self/fd"
    found = []
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith(path + os.sep):
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_ended_run_closes_its_files(make_exp):
    """complete() closes the run's JSONL files (a sweep of many runs in one process must not run out of fds)."""
    exp = make_exp()
    with exp.run():
        exp.params.set(lr=0.1)
        exp.metrics.log(step=0, loss=1.0)
        exp.info("hi")
        assert exp.flush(10) and _open_files_under(exp.local_path)
    assert _open_files_under(exp.local_path) == []
    exp.metrics.log(step=1, loss=2.0)  # logging after the end reopens the file
    assert [r["step"] for r in exp.metrics.read()] == [0, 1]


def test_run_finished_at_exit_has_no_unwritten_events(run_python, tmp_path):
    """A run ended at exit after everything was written does not claim unwritten events in its meta file."""
    proc = run_python(textwrap.dedent("""
        from ml_dash import Experiment
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        exp.run()
        exp.metrics.log(step=0, loss=1.0)
    """))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / ".ml-logger/a/b/c/.ml-logger.meta.json").read_text())
    assert meta["status"] == "completed" and "unwritten_events" not in meta


def test_complete_and_fail_from_two_threads_end_the_run_once(make_exp, monkeypatch):
    """complete() and fail() racing from two threads: one of them ends the run, the meta file is written once."""
    import threading

    from ml_dash.client.experiment import Experiment

    writes = []
    original = Experiment._write_meta
    monkeypatch.setattr(Experiment, "_write_meta", lambda self: (writes.append(self._meta.get("status")), original(self)))
    for i in range(10):
        exp = make_exp(f"race-{i}", capture_environment=False)  # its helper writes the meta once more, when done
        exp.run()
        for step in range(2000):  # something for the flush in _end to wait on, so both threads are inside it
            exp.metrics.log(step=step, loss=1.0)
        writes.clear()
        gate = threading.Barrier(2)
        threads = [threading.Thread(target=lambda: (gate.wait(), exp.complete())),
                   threading.Thread(target=lambda: (gate.wait(), exp.fail("boom")))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(writes) == 1 and writes[0] in ("completed", "failed"), writes
        assert exp.metrics.read()[-1]["step"] == 1999


def test_logging_without_run_starts_one_completed_at_exit(run_python, tmp_path):
    """The first logging call without exp.run() starts a run (as W&B and MLflow do); it is completed at exit."""
    proc = run_python(textwrap.dedent("""
        from ml_dash import Experiment
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        exp.params.set(lr=0.1)
        assert exp.status is None
        exp.metrics("train").log(step=0, loss=1.0)
        assert exp.status == "running"
        exp.info("hello")
    """))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / ".ml-logger/a/b/c/.ml-logger.meta.json").read_text())
    assert meta["status"] == "completed" and meta["started_at"] <= meta["completed_at"]


def test_run_after_an_implicit_start_takes_that_run_over(make_exp, caplog):
    exp = make_exp()
    exp.logs.info("before run()")
    started = _meta(exp)["started_at"]
    with caplog.at_level("WARNING", logger="ml_dash"):
        with exp.run():
            exp.metrics.log(step=0, loss=1.0)
    assert not caplog.records
    meta = _meta(exp)
    assert meta["status"] == "completed" and meta["started_at"] == started


def test_logging_after_complete_warns_once_and_keeps_the_data(make_exp, caplog):
    exp = make_exp()
    with exp.run():
        exp.metrics.log(step=0, loss=1.0)
    with caplog.at_level("WARNING", logger="ml_dash"):
        exp.metrics.log(step=1, loss=2.0)
        exp.metrics("val").log(step=1, loss=3.0)
        exp.info("late")
    assert len(caplog.records) == 1 and "after the run" in caplog.text
    assert [row["step"] for row in exp.metrics.read()] == [0, 1, 1]
    assert [line["message"] for line in exp.logs.read()] == ["late"]
    assert _meta(exp)["status"] == "completed"  # no new run behind the user's back


def test_nested_and_second_run_warn_once_and_the_outer_run_ends_it(make_exp, caplog):
    exp = make_exp()
    with caplog.at_level("WARNING", logger="ml_dash"):
        with exp.run():
            with exp.run():
                exp.metrics.log(step=0, loss=1.0)
            assert exp.status == "running"  # the inner block did not end the outer run
            exp.run()
            exp.metrics.log(step=1, loss=1.0)
    assert len(caplog.records) == 1 and "already open" in caplog.text
    assert exp.status == "completed"
    assert [row["step"] for row in exp.metrics.read()] == [0, 1]


@pytest.mark.parametrize("remote, error", [(8000, TypeError), ("localhost:8000", ValueError), ("ftp://h", ValueError),
                                           ("http://", ValueError), ("http://h:port", ValueError)])
def test_a_remote_that_is_not_an_http_url_is_refused_at_construction(make_exp, remote, error):
    with pytest.raises(error, match="remote"):
        make_exp(remote=remote)
