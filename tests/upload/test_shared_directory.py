"""Several processes logging to one experiment directory: the server holds every point once (one uploader identity
per directory, docs/remote.md#several-processes-one-directory)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading

import orjson
import pytest

from ml_dash.client.upload.state import SyncState

from ml_dash.server.testing import free_port, running_server

from .conftest import find_experiment_id, get_json

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Two barriers. At "go" every child opens the experiment at once: each claims the directory's uploader identity while
# none has saved a sync state yet (the server is not up, so nothing is saved before the run starts either). At "log",
# with the server up, they all log, each its own series and the shared one.
CHILD = r"""
import sys
from ml_dash import Experiment
rank, steps, root, remote = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
print("ready", flush=True)
assert sys.stdin.readline() == "go\n"
exp = Experiment(prefix="shared", namespace="alice", workspace="proj", local_root=root, remote=remote)
print("opened", flush=True)
assert sys.stdin.readline() == "log\n"
with exp.run():
    for step in range(steps):
        exp.metrics.log(step=step, **{f"rank{rank}": float(step), "shared": float(rank)})
print("done", flush=True)
"""


def barrier(children, said, then):
    for child in children:
        assert child.stdout.readline() == said + "\n", child.stderr.read()
    for child in children:  # every child is waiting: release them as close together as we can
        child.stdin.write(then + "\n")
        child.stdin.flush()


@contextlib.contextmanager
def launch_together(n, steps, root, data_dir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    env.update(PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""), ML_DASH_UPLOAD_TIMEOUT="120",
               ML_DASH_UPLOAD_INTERVAL="0.05", ML_DASH_RETRY_BASE="0.01", ML_DASH_RETRY_CAP="0.2")
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(rank), str(steps), root, f"http://127.0.0.1:{port}"],
                                 env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
                for rank in range(n)]
    try:
        barrier(children, "ready", "go")
        with running_server(data_dir, port=port) as url:
            barrier(children, "opened", "log")
            errors = []

            def wait(child):
                out, err = child.communicate(timeout=300)
                if child.returncode != 0 or "done" not in out:
                    errors.append(err)

            waiters = [threading.Thread(target=wait, args=(child,)) for child in children]
            for waiter in waiters:
                waiter.start()
            for waiter in waiters:
                waiter.join()
            assert not errors, errors[0]
            yield url
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.mark.parametrize("n", [8])
def test_processes_sharing_a_directory_upload_every_point_once(tmp_path, n):
    """N processes open one experiment together and log to it: every point is on the server exactly once."""
    steps = 3000
    root = str(tmp_path / ".ml-logger")
    with launch_together(n, steps, root, tmp_path / "server-data") as server:
        check_every_point_once(server, root, n, steps)


def check_every_point_once(server, root, n, steps):
    directory = os.path.join(root, "alice", "proj", "shared")
    local: dict[str, int] = {}
    with open(os.path.join(directory, "metrics.jsonl"), "rb") as f:
        for line in f:
            for key in orjson.loads(line)["metrics"]:
                local[key] = local.get(key, 0) + 1
    assert local == {"shared": n * steps, **{f"rank{r}": steps for r in range(n)}}
    api = f"{server}/api/v1/experiments/{find_experiment_id(server, 'shared')}"
    # Every stored point, shown or superseded: processes sharing a directory without a job identity are separate
    # runs, and a later one supersedes the earlier ones' points from its first step (docs/branches.md); a
    # distributed job gives its ranks one job (docs/distributed.md). Stored exactly once either way.
    on_server = {name: len(get_json(f"{api}/metrics/{name}")["steps"])
                 + len(get_json(f"{api}/metrics/{name}?superseded=1")["steps"]) for name in local}
    assert on_server == local
    # One identity, read by every process from the one sync state file: the server knows one stream per file.
    streams = get_json(f"{api}/streams")["streams"]
    client_id = SyncState(directory).client_id
    assert all(stream_id.startswith(client_id + ":") for stream_id in streams), streams
    assert streams[f"{client_id}:metrics"] == os.path.getsize(os.path.join(directory, "metrics.jsonl"))


def test_the_identity_is_claimed_once(tmp_path):
    """Two states opened on one new directory agree on the client id, and it is in the file before either saves."""
    first, second = SyncState(str(tmp_path)), SyncState(str(tmp_path))
    assert first.client_id == second.client_id
    assert orjson.loads((tmp_path / ".ml-dash-sync.json").read_bytes())["client_id"] == first.client_id
