import os
import socket
import subprocess
import sys
import time

import orjson
import pytest

from ml_dash.format.layout import META_FILE
from ml_dash.format.layout import atomic_write
from ml_dash.client.upload.crashed import process_gone
from ml_dash.server.testing import free_port
from ml_dash.testing import read_run

from .conftest import find_experiment_id, server_view
from .test_offline import TRAIN, child_env, ml_dash_sync

N = 5_000


def killed_run(tmp_path, prefix, **env):
    """A child logs N points (remote per ``env``, else offline), flushes, then SIGKILLs itself; returns (root, path,
    pid). Synchronised on the child's exit."""
    root = str(tmp_path / "logs")
    code = TRAIN.format(prefix=prefix, root=root, n=N, after="import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=child_env(**env))
    assert done.returncode == -9 and done.stdout.strip() == "FLUSHED", done.stderr
    path = os.path.join(root, "alice", "proj", prefix)
    meta = read_run(path)["meta"]
    assert meta["status"] == "running" and meta["hostname"] == socket.gethostname()
    return root, path, meta["pid"]


def edit_meta(path, **changes):
    meta_path = os.path.join(path, META_FILE)
    with open(meta_path, "rb") as f:
        meta = orjson.loads(f.read())
    meta.update(changes)
    atomic_write(meta_path, orjson.dumps(meta, option=orjson.OPT_INDENT_2))


def server_run(server, prefix):
    view = server_view(server, find_experiment_id(server, prefix))
    assert sorted(view["steps"]) == list(range(N))  # every point, exactly once
    assert len(view["runs"]) == 1
    return view["runs"][0]


def test_killed_with_server_unreachable_then_sync_marks_failed(tmp_path, server):
    """Killed while the server was unreachable: sync uploads everything, then marks the run FAILED here and there."""
    root, path, pid = killed_run(tmp_path, "crashed", REMOTE=f"http://127.0.0.1:{free_port()}", UPLOAD_TIMEOUT=0.5)
    done = ml_dash_sync(root, "--remote", server)
    assert done.returncode == 0, done.stdout + done.stderr
    error = (f"process {pid} on {socket.gethostname()} ended without complete() or fail() (killed?); "
             f"marked failed by ml-dash sync")
    run = server_run(server, "crashed")
    assert run["status"] == "FAILED" and run["error"] == error and run["ended_at"] >= run["started_at"]
    meta = read_run(path)["meta"]
    assert meta["status"] == "failed" and meta["error"] == error and meta["pid"] == pid
    assert f"marked FAILED: {path}: {error}" in done.stdout and "1 crashed run(s) marked FAILED" in done.stdout

    again = ml_dash_sync(root, "--remote", server)
    assert again.returncode == 0 and "0 events and 0 files sent" in again.stdout, again.stdout
    assert "marked FAILED" not in again.stdout and server_run(server, "crashed")["status"] == "FAILED"


def test_live_pid_stays_running(tmp_path, server):
    """A meta whose pid is alive (this test's own process, started before the run) stays RUNNING, with a note."""
    root, path, _pid = killed_run(tmp_path, "alive")
    edit_meta(path, pid=os.getpid())
    done = ml_dash_sync(root, "--remote", server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert server_run(server, "alive")["status"] == "RUNNING"
    assert read_run(path)["meta"]["status"] == "running"
    assert f"left RUNNING: {path}: process {os.getpid()} on {socket.gethostname()} is still alive" in done.stdout


def test_no_mark_crashed_keeps_running(tmp_path, server):
    """`--no-mark-crashed` leaves a dead run RUNNING; a later plain sync then marks it FAILED."""
    root, path, _pid = killed_run(tmp_path, "kept")
    done = ml_dash_sync(root, "--remote", server, "--no-mark-crashed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert server_run(server, "kept")["status"] == "RUNNING" and read_run(path)["meta"]["status"] == "running"
    assert "marked FAILED" not in done.stdout and "left RUNNING" not in done.stdout

    later = ml_dash_sync(root, "--remote", server)
    assert later.returncode == 0 and "0 events and 0 files sent" in later.stdout, later.stdout
    assert server_run(server, "kept")["status"] == "FAILED" and read_run(path)["meta"]["status"] == "failed"


def test_other_host_stays_running(tmp_path, server):
    """A run recorded on another host cannot be checked: it stays RUNNING and the summary says why."""
    root, path, pid = killed_run(tmp_path, "elsewhere")
    edit_meta(path, hostname="other-host.invalid")
    done = ml_dash_sync(root, "--remote", server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert server_run(server, "elsewhere")["status"] == "RUNNING"
    assert read_run(path)["meta"]["status"] == "running"
    assert f"left RUNNING: {path}: it runs on other-host.invalid" in done.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_gone_sees_reused_pids_and_zombies():
    """A live pid whose process started after the run counts as gone (reused), and so does an unreaped zombie."""
    assert not process_gone(os.getpid(), time.time())
    assert process_gone(os.getpid(), 1.0)  # this process started long after a run begun in 1970
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        assert process_gone(child.pid, time.time())
    finally:
        child.wait()
    assert process_gone(child.pid, time.time())


def test_next_run_ends_a_killed_run_on_the_server(tmp_path, server, remote_env):
    """A run killed with its data uploaded is marked FAILED on the server when the next run starts in its directory."""
    root, path, pid = killed_run(tmp_path, "restarted", REMOTE=server, UPLOAD_TIMEOUT=30)
    from ml_dash import Experiment

    exp = Experiment(namespace="alice", workspace="proj", prefix="restarted", local_root=root, remote=server)
    with exp.run():
        exp.metrics.log(step=N, loss=0.0)
    view = server_view(server, exp.experiment_id)
    assert sorted(view["steps"]) == list(range(N + 1))  # the killed run's points once, and the new one
    runs = sorted(view["runs"], key=lambda r: r["started_at"])
    assert [r["status"] for r in runs] == ["FAILED", "COMPLETED"]
    assert runs[0]["error"] == (f"process {pid} on {socket.gethostname()} ended without complete() or fail() "
                                f"(killed?); marked failed by the next run in this directory")


def test_next_run_leaves_a_live_processs_run_alone(tmp_path, server, remote_env):
    """A meta naming a live process (another rank, say) is not ended by a new run in the same directory."""
    root, path, _pid = killed_run(tmp_path, "shared", REMOTE=server, UPLOAD_TIMEOUT=30)
    edit_meta(path, pid=os.getppid())  # alive: the process that runs this test suite's parent
    from ml_dash import Experiment

    exp = Experiment(namespace="alice", workspace="proj", prefix="shared", local_root=root, remote=server)
    with exp.run():
        exp.metrics.log(step=N, loss=0.0)
    runs = sorted(server_view(server, exp.experiment_id)["runs"], key=lambda r: r["started_at"])
    assert [r["status"] for r in runs] == ["RUNNING", "COMPLETED"]
