"""Resume, rerun and append (docs/branches.md): one value per step locally and on the server, superseded points kept.

The kill -9 tests run the training script in a real subprocess: it logs steps 0..9,999, flushes, and is SIGKILLed
while "training" step 10,000; the rerun resumes from the checkpoint at step 9,000 and logs 9,000..11,999 with other
values. Steps 9,000..9,999 of the first run are then superseded: 1,000 points, hidden from every history read and
still readable with superseded=True.
"""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np

from ml_dash import Api
from ml_dash.client.upload.sync_command import sync_paths
from ml_dash.format.branches import history_rows

from tests.upload.conftest import find_experiment_id, get_json
from tests.upload.test_offline import child_env

SCRIPT = textwrap.dedent("""
    import sys, time
    from ml_dash import Experiment
    exp = Experiment(namespace="alice", workspace="proj", prefix="resume", local_root={root!r}, resume_step={resume})
    exp.run()
    exp.params.set(lr=0.1)
    for i in range({start}, {end}):
        exp.metrics.log(step=i, loss=i * {scale})
    exp.flush()
    print("LOGGED", flush=True)
    if {hang}:
        time.sleep(120)  # training step {end}: SIGKILLed here
    exp.complete()
""")


def train(root, start, end, scale, resume=None, hang=False, remote=None):
    """Run the script; with ``hang``, SIGKILL it once everything up to ``end`` is on disk."""
    env = child_env(**({"REMOTE": remote, "UPLOAD_TIMEOUT": 30} if remote else {}))
    code = SCRIPT.format(root=root, start=start, end=end, scale=scale, resume=resume, hang=hang)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    if hang:
        assert child.stdout.readline().strip() == "LOGGED", child.stderr.read()
        child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=120)
    assert child.returncode == (-signal.SIGKILL if hang else 0), err
    return child


def kill_then_resume(root, remote=None):
    train(root, 0, 10_000, 1.0, hang=True, remote=remote)
    train(root, 9_000, 12_000, -1.0, resume=9_000, remote=remote)
    return os.path.join(root, "alice", "proj", "resume")


def check_local(path):
    rows = [r for r in history_rows(path) if "loss" in r["metrics"]]
    steps = [r["step"] for r in rows]
    assert steps == list(range(12_000))  # one value per step, in order
    assert all(r["metrics"]["loss"] == (r["step"] * (1.0 if r["step"] < 9_000 else -1.0)) for r in rows)
    superseded = history_rows(path, superseded=True)
    assert [r["step"] for r in superseded] == list(range(9_000, 10_000))
    assert all(r["metrics"]["loss"] == r["step"] * 1.0 for r in superseded)


def check_server(url):
    experiment_id = find_experiment_id(url, "resume")
    api = f"{url}/api/v1/experiments/{experiment_id}"
    answer = get_json(f"{api}/metrics/loss")
    assert answer["count"] == 12_000 and answer["steps"] == list(range(12_000))
    assert answer["values"][8_999:9_001] == [8_999.0, -9_000.0]
    hidden = get_json(f"{api}/metrics/loss?superseded=1")
    assert hidden["steps"] == list(range(9_000, 10_000)) and hidden["values"][0] == 9_000.0
    # a chart read (block summaries): one value per step, the resumed branch's
    chart = get_json(f"{api}/metrics/loss?max_points=100")
    assert chart["count"] == 12_000 and chart["min"] == -11_999.0 and chart["max"] == 8_999.0
    runs = get_json(api)["runs"]
    assert [(r["status"], r["branch_step"], r["superseded_from"]) for r in runs] == [
        ("FAILED", None, 9_000), ("COMPLETED", 9_000, None)]
    frame = Api(remote=url).experiment(experiment_id).to_numpy("loss")
    assert np.array_equal(frame["step"], np.arange(12_000))


def test_kill9_at_10000_resume_from_9000_locally(tmp_path):
    path = kill_then_resume(str(tmp_path / "logs"))
    check_local(path)
    # Api on the local root reads the same history; the plain read keeps every entry logged
    record = Api(local_root=str(tmp_path / "logs")).experiment(path)
    assert np.array_equal(record.to_numpy("loss")["step"], np.arange(12_000))
    assert len(record.to_numpy("loss", superseded=True)["step"]) == 1_000


def test_kill9_at_10000_resume_from_9000_online(tmp_path, server):
    path = kill_then_resume(str(tmp_path / "logs"), remote=server)
    check_local(path)
    check_server(server)


def test_kill9_resume_offline_then_sync_is_the_same_exactly_once(tmp_path, server, remote_env):
    path = kill_then_resume(str(tmp_path / "logs"))
    check_local(path)
    results = sync_paths([path], server, show_progress=False)
    assert all(r.error is None for r in results), results
    check_server(server)
    again = sync_paths([path], server, show_progress=False)  # a second sync sends nothing
    assert all(r.error is None for r in again) and sum(sum(r.events.values()) for r in again) == 0
    check_server(server)
