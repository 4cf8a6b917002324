"""examples/remote_demo.py (what scripts/demo.sh runs): terminates on its own, and prints a dashboard URL only while
the server behind it is up."""
import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "examples", "remote_demo.py")


def _sigint_default() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and a Python started so
    # never turns Ctrl-C into KeyboardInterrupt; the demo under test must see Ctrl-C as a user's terminal sends it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_the_demo_terminates_and_prints_no_dead_url(tmp_path):
    done = subprocess.run([sys.executable, DEMO, "--data", str(tmp_path / "data")], capture_output=True, text=True,
                          timeout=120, env=_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "status=COMPLETED" in done.stdout
    assert "/#/exp/" not in done.stdout and "--keep" in done.stdout


@contextlib.contextmanager
def _kept_demo(tmp_path, stderr):
    """``remote_demo.py --keep`` running, with the ``dashboard:`` line it printed; killed afterwards in any case."""
    proc = subprocess.Popen([sys.executable, DEMO, "--keep", "--data", str(tmp_path / "data")], stdout=subprocess.PIPE,
                            stderr=stderr, text=True, env=_env(), cwd=tmp_path, preexec_fn=_sigint_default)
    watchdog = threading.Timer(90, proc.kill)  # bounds the read below if the demo never prints its URL
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.startswith("dashboard:"):
                break
        yield proc, line
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(timeout=30)


def test_with_keep_the_printed_url_answers_until_ctrl_c(tmp_path):
    """With --keep the printed URL answers, and Ctrl-C then ends the demo with status 0."""
    with _kept_demo(tmp_path, subprocess.DEVNULL) as (proc, line):
        url = line.split()[1]
        assert "Ctrl-C" in line
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_ctrl_c_as_soon_as_the_url_is_printed_exits_cleanly(tmp_path):
    """A Ctrl-C that lands while the demo is still printing its URL ends it with status 0, not a traceback."""
    with _kept_demo(tmp_path, subprocess.PIPE) as (proc, _):
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()[-2000:]


def test_each_demo_logs_fresh_runs_with_an_int_seed(tmp_path):
    """Two demos against one data directory: four experiments of 2,000 train.loss points, not two of 4,000."""
    for _ in range(2):
        done = subprocess.run([sys.executable, DEMO, "--data", str(tmp_path / "data")], capture_output=True, text=True,
                              timeout=120, env=_env(), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if "status=COMPLETED" in line]
        assert len(lines) == 2 and all("train.loss points=2000 " in line for line in lines), done.stdout
        assert '"seed": 0' in lines[0] and '"seed": 1' in lines[1]
    from ml_dash.server.testing import running_server

    with running_server(tmp_path / "data") as url:
        with urllib.request.urlopen(f"{url}/api/v1/experiments", timeout=30) as answer:
            import json

            assert len(json.load(answer)["experiments"]) == 4


def test_kill_of_a_kept_demo_stops_its_server(tmp_path):
    """`kill` (SIGTERM) of `demo.sh --keep`: the server the demo started stops with it."""
    import urllib.error

    with _kept_demo(tmp_path, subprocess.DEVNULL) as (proc, line):
        url = line.split()[1].split("/#")[0]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        try:
            urllib.request.urlopen(f"{url}/health", timeout=5).close()
            answered = True
        except (urllib.error.URLError, ConnectionError):
            answered = False
        assert not answered, "the demo's server outlived it"
