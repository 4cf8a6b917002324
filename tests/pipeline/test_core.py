import json
import multiprocessing
import os
import signal
import textwrap

import pytest

from ml_dash.format.jsonl import read_jsonl
from ml_dash.client.pipeline.process import PIPELINE


def _child_logs(exp, worker, n):
    for i in range(n):
        exp.metrics.log(step=i, worker=worker)


def test_forked_workers_neither_deadlock_nor_lose_events(make_exp):
    """Forked multiprocessing workers (which leave via os._exit) write their events exactly once, and so does the parent."""
    exp = make_exp()
    for i in range(5000):  # pending in the parent's queue at fork time: must not be duplicated by the children
        exp.metrics.log(step=i, worker=-1)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_child_logs, args=(exp, w, 1000)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    rows = exp.metrics.read()
    by_worker = {}
    for r in rows:
        by_worker.setdefault(r["metrics"]["worker"], []).append(r["step"])
    assert sorted(by_worker[-1]) == list(range(5000))
    for w in range(3):
        assert sorted(by_worker[w]) == list(range(1000))


def test_plain_fork_child_flushes_at_exit(make_exp):
    """A child made with os.fork that exits normally drains its events at exit."""
    exp = make_exp()
    exp.metrics.log(step=0, who=0)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            exp.metrics.log(step=1, who=1)
            PIPELINE.exit_drain()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert sorted(r["metrics"]["who"] for r in exp.metrics.read()) == [0, 1]


def test_exit_drains_and_completes_open_run(run_python, tmp_path):
    """A script that never calls complete() still has every event on disk and a completed status."""
    proc = run_python(textwrap.dedent("""
        from ml_dash import Experiment
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        exp.run()
        for i in range(50000):
            exp.metrics.log(step=i, loss=i)
    """))
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / ".ml-logger/a/b/c"
    assert len(read_jsonl(str(root / "metrics.jsonl"))) == 50000
    assert json.loads((root / ".ml-logger.meta.json").read_text())["status"] == "completed"


def test_uncaught_exception_marks_open_run_failed(run_python, tmp_path):
    """An uncaught exception with a run open marks it failed at exit."""
    proc = run_python(textwrap.dedent("""
        from ml_dash import Experiment
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        exp.run()
        exp.metrics.log(step=0, loss=1.0)
        raise SystemError("kaboom")
    """))
    assert proc.returncode != 0
    meta = json.loads((tmp_path / ".ml-logger/a/b/c/.ml-logger.meta.json").read_text())
    assert meta["status"] == "failed" and "kaboom" in meta["error"]


def test_exit_is_bounded_when_writer_is_stuck(run_python):
    """If the disk hangs, exit waits at most ML_DASH_EXIT_TIMEOUT and says how many events were left."""
    proc = run_python(textwrap.dedent("""
        import threading
        from ml_dash import Experiment
        from ml_dash.client.sinks.jsonl import LocalStore
        LocalStore.append = lambda self, stream, lines: threading.Event().wait()  # a write that never returns
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        for i in range(1000):
            exp.metrics.log(step=i, loss=i)
    """), env={"ML_DASH_EXIT_TIMEOUT": "1"}, timeout=30)
    assert proc.returncode == 0
    assert "still pending" in proc.stderr


# Logs 5000 rows into a 100-event queue while the writer is held at its first append, then lets it go.
OVERFLOW_WHILE_WRITER_WAITS = textwrap.dedent("""
        import threading
        from ml_dash import Experiment
        from ml_dash.client.sinks.jsonl import LocalStore
        gate = threading.Event()
        original = LocalStore.append
        def slow_append(self, stream, lines):
            gate.wait()
            return original(self, stream, lines)
        LocalStore.append = slow_append
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        exp.run()
        for i in range(5000):
            exp.metrics.log(step=i, loss=i)
        gate.set()
""")
DROP_ENV = {"ML_DASH_QUEUE_SIZE": "100", "ML_DASH_ON_FULL": "drop"}


def test_drop_policy_counts_and_reports(run_python, tmp_path):
    """With on_full=drop and a tiny queue, drops are counted in the meta file and a WARNING log line."""
    proc = run_python(OVERFLOW_WHILE_WRITER_WAITS + "exp.complete()\n", env=DROP_ENV)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / ".ml-logger/a/b/c"
    meta = json.loads((root / ".ml-logger.meta.json").read_text())
    kept = len(read_jsonl(str(root / "metrics.jsonl")))
    assert meta["dropped_events"] > 0 and kept + meta["dropped_events"] == 5000
    warning = [l for l in read_jsonl(str(root / "logs.jsonl")) if l["level"] == "WARNING"]
    assert warning and warning[0]["context"]["dropped_events"] == meta["dropped_events"]


def test_block_policy_loses_nothing_with_tiny_queue(run_python, tmp_path):
    """With the default block policy a tiny queue slows the caller but every point arrives."""
    proc = run_python(textwrap.dedent("""
        from ml_dash import Experiment
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        with exp.run():
            for i in range(20000):
                exp.metrics.log(step=i, loss=i)
    """), env={"ML_DASH_QUEUE_SIZE": "50"})
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(str(tmp_path / ".ml-logger/a/b/c/metrics.jsonl"))
    assert [r["step"] for r in rows] == list(range(20000))


def test_unwritable_root_is_reported_then_recovers(make_exp, tmp_path, capsys):
    """A root that cannot be created is reported on the next call without raising; lines are written once it can."""
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where a directory should be")
    exp = make_exp(local_root=str(blocker / "root"))
    exp.metrics.log(step=0, loss=1.0)
    assert exp.flush(10) is False
    exp.metrics.log(step=1, loss=2.0)  # the next call reports the error on stderr, and does not raise
    assert "could not write" in capsys.readouterr().err
    blocker.unlink()
    assert exp.flush(10) is True
    assert [r["step"] for r in exp.metrics.read()] == [0, 1]


def test_processes_appending_to_one_experiment_never_interleave(run_python, tmp_path):
    """Four processes logging into one experiment produce only whole lines."""
    code = textwrap.dedent("""
        import sys
        from ml_dash import Experiment
        exp = Experiment(namespace="a", workspace="b", prefix="shared")
        rank = int(sys.argv[1])
        for i in range(20000):
            exp.metrics.log(step=i, rank=rank, payload=float(i) * 1.5)
    """)
    import subprocess
    import sys

    script = tmp_path / "rank.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    procs = [subprocess.Popen([sys.executable, str(script), str(r)], cwd=tmp_path, env=env) for r in range(4)]
    assert all(p.wait(120) == 0 for p in procs)
    raw = (tmp_path / ".ml-logger/a/b/shared/metrics.jsonl").read_bytes().splitlines()
    parsed = [json.loads(line) for line in raw]  # any interleaving inside a line would fail here
    # each process's run after the first begins with its run mark (docs/branches.md), a line of its own
    assert len([row for row in parsed if "run" not in row]) == 80000


def test_reader_skips_torn_lines(tmp_path):
    """A torn last line (crash mid-write) and a torn middle line are skipped, not fatal."""
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 0}\n{"step": 1, "metr\n{"step": 2}\n{"step": 3, "met')
    assert read_jsonl(str(path)) == [{"step": 0}, {"step": 2}]


def test_killed_process_leaves_readable_files(tmp_path, run_python):
    """After SIGKILL mid-logging, the files parse and the steps written form a prefix of what was logged."""
    import subprocess
    import sys

    script = tmp_path / "k.py"
    script.write_text(textwrap.dedent("""
        import sys
        from ml_dash import Experiment
        exp = Experiment(namespace="a", workspace="b", prefix="k")
        exp.run()
        i = 0
        while True:
            exp.metrics.log(step=i, loss=1.0)
            if i == 30000:
                exp.flush()
                print("ready", flush=True)
            i += 1
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = [r["step"] for r in read_jsonl(str(tmp_path / ".ml-logger/a/b/k/metrics.jsonl"))]
    assert len(steps) >= 30001 and steps == list(range(len(steps)))


def test_flush_timeout_returns(make_exp):
    """``exp.flush(timeout)`` returns True once written."""
    exp = make_exp()
    exp.metrics.log(step=0, x=1)
    assert exp.flush(timeout=30) is True


def test_fork_child_does_not_rewrite_parents_unwritten_lines(make_exp, tmp_path):
    """Lines the parent could not write yet (root unwritable) are written by the parent only, not again by a child."""
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where a directory should be")
    exp = make_exp(local_root=str(blocker / "root"))
    exp.metrics.log(step=0, who=0)
    assert exp.flush(10) is False  # the line waits in the parent's store
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(go_w)
            os.read(go_r, 1)
            exp.metrics.log(step=1, who=1)
            PIPELINE.flush(10)
        finally:
            os._exit(0)
    os.close(go_r)
    blocker.unlink()
    assert exp.flush(10) is True
    os.write(go_w, b"x")
    os.close(go_w)
    os.waitpid(pid, 0)
    assert sorted(r["step"] for r in exp.metrics.read()) == [0, 1]


def test_drop_warning_of_run_ended_at_exit_is_written(run_python, tmp_path):
    """A run ended at exit with drops writes its WARNING line, and its meta file does not claim unwritten events."""
    proc = run_python(OVERFLOW_WHILE_WRITER_WAITS, env=DROP_ENV)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / ".ml-logger/a/b/c"
    meta = json.loads((root / ".ml-logger.meta.json").read_text())
    assert meta["status"] == "completed" and meta["dropped_events"] > 0 and "unwritten_events" not in meta
    warning = [l for l in read_jsonl(str(root / "logs.jsonl")) if l["level"] == "WARNING"]
    assert warning and warning[0]["context"]["dropped_events"] == meta["dropped_events"]


def test_flush_retries_held_back_lines_once_the_disk_recovers(make_exp, tmp_path):
    """flush() after the root became writable writes the held-back lines before returning, with nothing new logged."""
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where a directory should be")
    exp = make_exp(local_root=str(blocker / "root"))
    exp.metrics.log(step=0, loss=1.0)
    assert exp.flush(10) is False
    blocker.unlink()
    assert exp.flush(10) is True
    assert [r["step"] for r in exp.metrics.read()] == [0]


def test_complete_is_bounded_when_writer_is_stuck(run_python, tmp_path):
    """If the disk hangs, complete() returns after ML_DASH_COMPLETE_TIMEOUT and records what was not written."""
    proc = run_python(textwrap.dedent("""
        import threading
        from ml_dash import Experiment
        from ml_dash.client.sinks.jsonl import LocalStore
        LocalStore.append = lambda self, stream, lines: threading.Event().wait()  # a write that never returns
        exp = Experiment(namespace="a", workspace="b", prefix="c")
        exp.run()
        for i in range(100):
            exp.metrics.log(step=i, loss=i)
        exp.complete()
        print("returned", flush=True)
    """), env={"ML_DASH_COMPLETE_TIMEOUT": "1", "ML_DASH_EXIT_TIMEOUT": "1"}, timeout=60)
    assert proc.returncode == 0 and "returned" in proc.stdout
    meta = json.loads((tmp_path / ".ml-logger/a/b/c/.ml-logger.meta.json").read_text())
    assert meta["status"] == "completed" and meta["unwritten_events"] > 0
    assert "were not written within" in proc.stderr
