import os
import signal
import subprocess
import sys
import textwrap

from ml_dash.client.upload.sync_command import format_summary, sync_paths
from ml_dash.server.testing import free_port
from ml_dash.testing import read_run

from .conftest import find_experiment_id, server_view
from .fault_proxy import FaultProxy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    # These children print a line their parent reads and then SIGKILL themselves: a line still in the console
    # capture's pipe would die with them (docs/distributed.md); the capture has tests of its own.
    env["ML_DASH_CONSOLE"] = "0"
    env.update({f"ML_DASH_{k}": str(v) for k, v in extra.items()})
    return env


def ml_dash_sync(*args):
    return subprocess.run([sys.executable, "-m", "ml_dash.cli", "sync", "--no-progress", *args],
                          capture_output=True, text=True, timeout=60, env=child_env(), cwd=REPO)


TRAIN = textwrap.dedent("""
    import sys, time
    from ml_dash import Experiment
    exp = Experiment(namespace="alice", workspace="proj", prefix="{prefix}", local_root={root!r})
    exp.run()
    exp.params.set(lr=0.1)
    for i in range({n}):
        exp.metrics.log(step=i, loss=i * 0.5)
        if i % 1000 == 0:
            exp.info(f"step {{i}}")
    exp.files.save(b"weights" * 1000, "model.bin")
    exp.flush()
    print("FLUSHED", flush=True)
    {after}
""")


def test_server_unreachable_from_the_start_run_completes_locally_with_one_warning(tmp_path):
    """No server listening: the run completes locally, exit is bounded, one warning says so and names ml-dash sync."""
    root = str(tmp_path / "logs")
    code = TRAIN.format(prefix="offline", root=root, n=20_000, after="exp.complete()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=child_env(REMOTE=f"http://127.0.0.1:{free_port()}", UPLOAD_TIMEOUT=0.5))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot reach the server") == 1, done.stderr
    assert "ml-dash sync" in done.stderr
    run = read_run(os.path.join(root, "alice", "proj", "offline"))
    assert len(run["metrics"]) == 20_000 and run["meta"]["status"] == "completed"


def test_client_killed_mid_upload_then_ml_dash_sync_exactly_once(tmp_path, server):
    """SIGKILL while batches are in flight, then `ml-dash sync`: every point, log, param and file once; run FAILED."""
    root = str(tmp_path / "logs")
    with FaultProxy(server, fault_rate=0.0, stall_after=6) as proxy:
        code = TRAIN.format(prefix="killed", root=root, n=50_000, after="time.sleep(600)")
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                                 env=child_env(REMOTE=proxy.url, UPLOAD_BATCH_EVENTS=2000, UPLOAD_INTERVAL=0.01))
        try:
            assert child.stdout.readline().strip() == "FLUSHED"
            assert proxy.stalled.wait(30), proxy.log  # a request is held mid-flight: the upload is not finished
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
    path = os.path.join(root, "alice", "proj", "killed")
    experiment_id = find_experiment_id(server, "killed")
    assert len(server_view(server, experiment_id)["steps"]) < 50_000  # it was killed mid-upload

    done = ml_dash_sync(root, "--remote", server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 experiment(s)" in done.stdout
    local = read_run(path)
    view = server_view(server, experiment_id)
    assert sorted(view["steps"]) == list(range(50_000))
    assert view["params"] == local["params"]
    assert sorted(view["logs"]) == sorted(entry["message"] for entry in local["logs"])
    assert view["files"] == {"model.bin": 7000}
    run = view["runs"][0]  # killed: nobody ended the run, so sync marked it (same host, pid gone)
    assert run["status"] == "FAILED" and f"process {child.pid} on " in run["error"], run
    assert local["meta"]["status"] == "failed" and local["meta"]["error"] == run["error"]
    assert "marked FAILED: " + path in done.stdout

    again = ml_dash_sync(root, "--remote", server)
    assert again.returncode == 0 and "0 events and 0 files sent" in again.stdout, again.stdout


def test_offline_runs_sync_with_summary_and_torn_tail(make_exp, tmp_path, server):
    """Runs logged without a server sync later; a torn last line (crash mid-write) is skipped, not a blocker."""
    done = make_exp("done")
    with done.run():
        done.params.set(epochs=3)
        for i in range(3000):
            done.metrics.log(step=i, loss=1.0)
        done.files.save({"k": 1}, "out.json")
    failed = make_exp("failed", directory="sweep/a")
    try:
        with failed.run():
            failed.metrics.log(step=0, loss=float("inf"))
            raise ValueError("diverged")
    except ValueError:
        pass
    with open(os.path.join(failed.local_path, "metrics.jsonl"), "ab") as f:
        f.write(b'{"timestamp": 1.0, "step": 1, "metr')  # torn by a crash

    results = sync_paths([str(tmp_path / ".ml-logger")], server, show_progress=False, attempts=2)
    by_prefix = {os.path.basename(r.path): r for r in results}
    # system: the sampler's rows, whatever a short run got (its first and last sample; on a loaded machine the two
    # can be one), each sent once
    def system_rows(exp):
        path = os.path.join(exp.local_path, "system.jsonl")
        return sum(1 for _ in open(path, "rb")) if os.path.exists(path) else 0

    systems = system_rows(done) + system_rows(failed)
    assert by_prefix["done"].events == {"parameters": 1, "metrics": 3000, "logs": 0, "system": system_rows(done),
                                        "console": 0, "media": 0}
    assert by_prefix["done"].files == 1 and by_prefix["done"].run_status == "COMPLETED"
    assert by_prefix["failed"].events["metrics"] == 1 and by_prefix["failed"].run_status == "FAILED"
    assert all(r.error is None for r in results)
    summary = format_summary(results)
    assert f"2 experiment(s), {3002 + systems} events and 1 files sent, 0 failed" in summary

    view = server_view(server, find_experiment_id(server, "failed"))
    assert view["steps"] == [0] and "diverged" in view["runs"][0]["error"]
    again = sync_paths([str(tmp_path / ".ml-logger")], server, show_progress=False, attempts=2)
    assert all(sum(r.events.values()) == 0 and r.files == 0 for r in again)


def test_sync_without_a_remote_is_a_usage_error(tmp_path):
    """`ml-dash sync` with no --remote, no ML_DASH_REMOTE and no recorded server exits 2 with a hint."""
    done = ml_dash_sync(str(tmp_path))
    assert done.returncode == 2 and "--remote" in done.stderr and "ML_LOGGER_REMOTE" in done.stderr


def test_the_printed_recovery_command_uses_the_recorded_server(make_exp, server):
    """`ml-dash sync PATH`, as printed when an upload did not finish, sends to the server the run was logged to."""
    exp = make_exp("recorded")
    with exp.run():
        exp.metrics.log(step=0, loss=1.0)
    sync_paths([exp.local_path], server, show_progress=False, attempts=2)  # records the server, as the uploader does
    with exp.run():  # a later run that never reached the server
        for i in range(1, 50):
            exp.metrics.log(step=i, loss=1.0)
    done = ml_dash_sync(exp.local_path)
    assert done.returncode == 0, done.stderr + done.stdout
    view = server_view(server, find_experiment_id(server, "recorded"))
    assert sorted(view["steps"]) == list(range(50))
    assert [run["status"] for run in view["runs"]] == ["COMPLETED", "COMPLETED"]


def test_a_truncated_stream_file_is_sent_again_as_a_new_stream(make_exp, tmp_path, server, caplog):
    """A metrics file cut shorter than what the server acknowledged is uploaded afresh, with no garbled line."""
    exp = make_exp("truncated")
    with exp.run():
        for i in range(1000):
            exp.metrics.log(step=i, loss=1.0)
    sync_paths([exp.local_path], server, show_progress=False, attempts=2)
    metrics_path = os.path.join(exp.local_path, "metrics.jsonl")
    with open(metrics_path, "r+b") as f:
        f.truncate(0)  # e.g. a user cleared the file by hand
    with exp.run():
        for i in range(5000, 5010):
            exp.metrics.log(step=i, loss=2.0)
    with caplog.at_level("WARNING", logger="ml_dash"):
        [result] = sync_paths([exp.local_path], server, show_progress=False, attempts=2)
    assert result.error is None and result.events["metrics"] == 10
    assert "no longer extends" in caplog.text
    view = server_view(server, exp.experiment_id or find_experiment_id(server, "truncated"))
    assert sorted(view["steps"]) == list(range(1000)) + list(range(5000, 5010))


def test_one_line_the_server_refuses_is_dropped_and_reported_not_blocking_the_run(make_exp, server, caplog):
    """A line the server refuses (an older client's 300-character name, a log whose message is not a string) is
    isolated, dropped with a WARNING, and everything around it is uploaded; the run's status follows."""
    exp = make_exp("one-bad-line")
    with exp.run():
        for i in range(300):
            exp.metrics.log(step=i, loss=1.0)
            exp.info(f"line {i}")
        exp.flush()
        with open(os.path.join(exp.local_path, "metrics.jsonl"), "ab") as f:
            f.write(b'{"timestamp":1.0,"step":300,"metrics":{"' + b"x" * 300 + b'":1.0}}\n')
        with open(os.path.join(exp.local_path, "logs.jsonl"), "ab") as f:
            f.write(b'{"timestamp":1.0,"level":"INFO","message":5,"context":{}}\n')
        for i in range(301, 600):
            exp.metrics.log(step=i, loss=1.0)
            exp.info(f"line {i}")
    with caplog.at_level("WARNING", logger="ml_dash"):
        [result] = sync_paths([exp.local_path], server, show_progress=False, attempts=2)
    assert result.error is None and result.run_status == "COMPLETED"
    assert "refused" in caplog.text and '"message":5' in caplog.text
    view = server_view(server, find_experiment_id(server, "one-bad-line"))
    expected = [i for i in range(600) if i != 300]
    assert sorted(view["steps"]) == expected
    assert sorted(view["logs"]) == sorted(f"line {i}" for i in expected)
    again = sync_paths([exp.local_path], server, show_progress=False, attempts=2)
    assert sum(again[0].events.values()) == 0  # nothing left to send, nothing sent twice
