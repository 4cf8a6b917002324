import json
import os

from ml_dash.server.testing import free_port, running_server
from ml_dash.testing import read_run

from .conftest import server_view
from .fault_proxy import FaultProxy


def log_run(exp, n, start=0, params=True):
    """Log ``n`` metric points (steps start..start+n-1) and one log line per 1000 points."""
    if params:
        exp.params.set(lr=0.001, model={"layers": 50})
    for i in range(start, start + n):
        exp.metrics.log(step=i, loss=1.0 / (i + 1))
        if i % 1000 == 0:
            exp.info(f"step {i}")


def assert_mirrored(base_url, exp, expected_steps):
    """The server holds exactly what the local files hold: every step once, same params, logs and files."""
    local = read_run(exp.local_path)
    view = server_view(base_url, exp.experiment_id)
    assert len(local["metrics"]) == len(expected_steps)
    assert sorted(view["steps"]) == sorted(expected_steps)
    assert len(view["steps"]) == len(set(view["steps"]))
    assert view["params"] == local["params"]
    assert sorted(view["logs"]) == sorted(entry["message"] for entry in local["logs"])
    return view


def test_100k_points_reach_the_server_exactly(make_exp, server, remote_env):
    """100k points, params, logs and a file logged with the server up: the server's counts equal the local ones."""
    exp = make_exp("big", remote=server)
    assert exp.experiment_id is None  # registered when a run starts, not at construction
    with exp.run():
        assert exp.experiment_id is not None  # the run's start waited the few ms the create takes
        log_run(exp, 100_000)
        exp.metrics.log(step=100_000, loss=float("nan"))
        exp.files.save({"final": "results"}, "results.json")
        exp.files.save(b"x" * 300_000, "checkpoints/model.bin")
    view = assert_mirrored(server, exp, list(range(100_001)))
    assert view["files"] == {"results.json": os.path.getsize(exp.local_path + "/files/results.json"),
                             "checkpoints/model.bin": 300_000}
    assert exp.run_id is not None
    assert [(r["id"], r["status"]) for r in view["runs"]] == [(exp.run_id, "COMPLETED")]


def test_failed_run_status_and_error_follow_the_data(make_exp, server, remote_env):
    """A failing run reaches the server as FAILED with its error, after all of its data."""
    exp = make_exp("fails", remote=server)
    try:
        with exp.run():
            log_run(exp, 5000)
            raise RuntimeError("CUDA out of memory")
    except RuntimeError:
        pass
    view = assert_mirrored(server, exp, list(range(5000)))
    assert view["runs"][0]["status"] == "FAILED"
    assert "CUDA out of memory" in view["runs"][0]["error"]


def test_a_second_run_of_the_same_experiment_appends_without_duplicates(make_exp, server, remote_env):
    """Re-running the same experiment (new process state, same files) sends only the new lines, as a new run."""
    first = make_exp("again", remote=server)
    with first.run():
        log_run(first, 3000)
    second = make_exp("again", remote=server)
    with second.run():
        log_run(second, 2000, start=3000, params=False)
    assert second.experiment_id == first.experiment_id
    view = assert_mirrored(server, second, list(range(5000)))
    assert [r["status"] for r in view["runs"]] == ["COMPLETED", "COMPLETED"]


def test_server_stopped_mid_run_then_restarted_exactly_once(make_exp, tmp_path, remote_env):
    """The server goes away mid-run and comes back on the same data dir: every point arrives exactly once."""
    port = free_port()
    data = tmp_path / "server-data"
    with running_server(data, port=port) as url:
        exp = make_exp("restart", remote=url)
        exp.run()
        log_run(exp, 20_000)
        exp.flush()
    log_run(exp, 30_000, start=20_000, params=False)  # logged while the server is down
    exp.flush()
    with running_server(data, port=port) as url:
        exp.complete()  # waits (ML_DASH_UPLOAD_TIMEOUT=30) for the retries to get through
        view = assert_mirrored(url, exp, list(range(50_000)))
        assert view["runs"][0]["status"] == "COMPLETED"


def test_faults_on_a_fraction_of_requests_exactly_once(make_exp, server, remote_env):
    """500/429/503, connections cut before and after the server applied a batch: still exactly once."""
    remote_env(UPLOAD_BATCH_EVENTS=1000, RETRY_BASE=0.001, RETRY_CAP=0.005)
    with FaultProxy(server, fault_rate=0.3, retry_after="0.02") as proxy:
        exp = make_exp("faulty", remote=proxy.url)
        with exp.run():
            log_run(exp, 40_000)
            exp.files.save({"a": 1}, "a.json")
    view = assert_mirrored(server, exp, list(range(40_000)))
    assert view["files"] == {"a.json": os.path.getsize(exp.local_path + "/files/a.json")}
    assert view["runs"][0]["status"] == "COMPLETED"
    assert set(proxy.injected) == {"500", "429", "503", "cut_before", "cut_after"}
    # Retry-After honoured: the retry of a batch answered 429/503 came no sooner than the server asked (other
    # batches of the window may be sent meanwhile).
    for i, (t0, stream, start, _ahead, outcome) in enumerate(proxy.batches):
        if outcome in ("429", "503"):
            retry = next((t1 for t1, s1, b1, *_ in proxy.batches[i + 1:] if (s1, b1) == (stream, start)), None)
            assert retry is None or retry - t0 >= 0.02 * 0.9  # None: the range went again in other batches


def test_gzip_request_bodies_arrive_exactly(make_exp, server, remote_env):
    """With UPLOAD_GZIP=on, large batches travel gzipped and the server still holds every point once."""
    remote_env(UPLOAD_GZIP="on")
    with FaultProxy(server, fault_rate=0.0) as proxy:
        exp = make_exp("gzipped", remote=proxy.url)
        with exp.run():
            log_run(exp, 30_000)
    assert_mirrored(server, exp, list(range(30_000)))
    assert proxy.encodings["gzip"] >= 1  # the metric batches (> 64 KiB); small requests go as they are
    assert proxy.encodings[""] >= 1


def test_token_is_sent_as_bearer_and_a_refusal_is_reported(make_exp, tmp_path, remote_env, caplog):
    """With ML_DASH_TOKEN the upload works on a server with auth; a wrong token stops the upload with an error."""
    with running_server(tmp_path / "auth-data", tokens=["secret"]) as url:
        remote_env(TOKEN="secret")
        exp = make_exp("auth", remote=url)
        with exp.run():
            log_run(exp, 1000)
        from .conftest import get_json

        steps = get_json(f"{url}/api/v1/experiments/{exp.experiment_id}/metrics/loss", token="secret")["steps"]
        assert steps == list(range(1000))
        remote_env(TOKEN="wrong")
        bad = make_exp("auth-bad", remote=url)
        with bad.run():
            log_run(bad, 10)
    assert bad.experiment_id is None
    assert any("401" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert json.loads(open(bad.local_path + "/.ml-logger.meta.json").read())["status"] == "completed"


def test_logging_without_run_reaches_the_server(server, tmp_path):
    """A remote experiment that logs without exp.run(): the first call starts a run, the data arrives, the run is
    COMPLETED at exit, and the local directory has a meta file (so `ml-dash sync` finds it)."""
    import subprocess
    import sys
    import textwrap

    from ml_dash.client.upload.sync_command import find_experiments

    from .conftest import find_experiment_id
    from .test_offline import child_env

    code = textwrap.dedent(f"""
        from ml_dash import Experiment
        exp = Experiment(namespace="alice", workspace="proj", prefix="no-run", remote={server!r},
                         local_root={str(tmp_path / "root")!r})
        exp.params.set(lr=0.1)
        for i in range(500):
            exp.metrics.log(step=i, loss=1.0)
        exp.info("done")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=child_env(UPLOAD_INTERVAL="0.05"))
    assert done.returncode == 0, done.stderr
    assert len(find_experiments([str(tmp_path / "root")])) == 1
    view = server_view(server, find_experiment_id(server, "no-run"))
    assert sorted(view["steps"]) == list(range(500))
    assert view["logs"] == ["done"] and view["params"] == {"lr": 0.1}
    assert [run["status"] for run in view["runs"]] == ["COMPLETED"]


SIGTERMED = """
import signal, sys, time
from ml_dash import Experiment
exp = Experiment(namespace="alice", workspace="proj", prefix="{prefix}", remote={remote!r}, local_root={root!r})
{own_handler}
exp.run()
for i in range(1000):
    exp.metrics.log(step=i, loss=1.0)
exp.flush()
for i in range(1000, 1500):  # still queued when the signal comes: the writer only wakes every 60 s
    exp.metrics.log(step=i, loss=1.0)
print("ready", flush=True)
# Short sleeps, as a training loop between steps: CPython runs a Python signal handler only between bytecodes, so a
# SIGTERM landing after the check before one long sleep(120) (the "ready" line makes that likely) waits out the sleep.
for _ in range(2400):
    time.sleep(0.05)
"""


def _sigterm_child(server, tmp_path, prefix, own_handler=""):
    import signal
    import subprocess
    import sys

    from .test_offline import child_env

    code = SIGTERMED.format(prefix=prefix, remote=server, root=str(tmp_path / "root"), own_handler=own_handler)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(FLUSH_INTERVAL=60, UPLOAD_INTERVAL=60, UPLOAD_TIMEOUT=20))
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return proc, os.path.join(tmp_path, "root", "alice", "proj", prefix)


def test_sigterm_ends_the_run_failed_and_uploads_its_last_points(server, tmp_path):
    """docker stop / SLURM / Kubernetes: SIGTERM drains, marks the run failed and uploads it, then exits 143."""
    from .conftest import find_experiment_id

    proc, path = _sigterm_child(server, tmp_path, "terminated")
    assert proc.returncode == -15, proc.stderr.read()  # 143 in a shell, as without the handler
    local = read_run(path)
    assert local["meta"]["status"] == "failed" and local["meta"]["error"] == "terminated by SIGTERM"
    assert [row["step"] for row in local["metrics"]] == list(range(1500))
    view = server_view(server, find_experiment_id(server, "terminated"))
    assert sorted(view["steps"]) == list(range(1500))
    assert [(run["status"], run["error"]) for run in view["runs"]] == [("FAILED", "terminated by SIGTERM")]


def test_a_programs_own_sigterm_handler_is_left_alone(server, tmp_path):
    own = "signal.signal(signal.SIGTERM, lambda *a: (print('own handler', flush=True), sys.exit(7)))"
    proc, path = _sigterm_child(server, tmp_path, "own-handler", own_handler=own)
    assert proc.returncode == 7  # the program's handler ran, not ml-dash's
    assert read_run(path)["meta"]["status"] == "completed"  # sys.exit() at exit, as before
