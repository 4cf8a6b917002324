"""Forks (docs/branches.md): parent[<= step] ∪ child, copy-on-read, transitively; the parent unchanged."""
import os

import numpy as np
import pytest

from ml_dash import Api, Experiment
from ml_dash.client.upload.sync_command import sync_paths
from ml_dash.format.branches import history_rows

from tests.upload.conftest import find_experiment_id, get_json


def log(root, prefix, steps, value, remote=None, **kwargs):
    exp = Experiment(namespace="alice", workspace="proj", prefix=prefix, local_root=root, remote=remote, **kwargs)
    with exp.run():
        if "fork_from" not in kwargs:
            exp.params.set(lr=0.1, model={"depth": 4})
        for step in steps:
            exp.metrics.log(step=step, loss=value(step))
    return exp


def chain(root, remote=None):
    """a: 0..999; b forks a at 499 and logs 500..799; c forks b at 699 and logs 700..899."""
    log(root, "a", range(1000), float, remote)
    log(root, "b", range(500, 800), lambda s: -float(s), remote, fork_from="a", fork_step=499)
    return log(root, "c", range(700, 900), lambda s: 10.0 * s, remote, fork_from="b", fork_step=699)


def expected_c():
    return [float(s) for s in range(500)] + [-float(s) for s in range(500, 700)] + [10.0 * s for s in range(700, 900)]


def test_fork_chain_reads_parent_up_to_the_fork_then_its_own_locally(tmp_path):
    root = str(tmp_path)
    c = chain(root)
    rows = c.metrics.read(resolved=True)
    assert [r["step"] for r in rows] == list(range(900))
    assert [r["metrics"]["loss"] for r in rows] == expected_c()
    assert len(c.metrics.read()) == 200  # what c itself logged: no parent point was copied
    a = os.path.join(root, "alice", "proj", "a")
    assert [r["metrics"]["loss"] for r in history_rows(a)] == [float(s) for s in range(1000)]  # unchanged
    frame = Api(local_root=root).experiment(c.local_path).to_numpy("loss")
    assert frame["loss"].tolist() == expected_c()


def test_fork_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="fork_step"):
        Experiment(namespace="a", workspace="b", prefix="c", local_root=str(tmp_path), fork_from="x")
    with pytest.raises(TypeError, match="fork_step"):
        Experiment(namespace="a", workspace="b", prefix="c", local_root=str(tmp_path), fork_from="x", fork_step="1")
    with pytest.raises(ValueError, match="append"):
        Experiment(namespace="a", workspace="b", prefix="c", local_root=str(tmp_path), resume_step=3, append=True)


def check_server_chain(url):
    ids = {p: find_experiment_id(url, p) for p in "abc"}
    api = f"{url}/api/v1/experiments"
    answer = get_json(f"{api}/{ids['c']}/metrics/loss")
    assert answer["steps"] == list(range(900)) and answer["values"] == expected_c()
    assert get_json(f"{api}/{ids['a']}/metrics/loss")["values"] == [float(s) for s in range(1000)]
    assert get_json(f"{api}/{ids['c']}")["params"] == {"lr": 0.1, "model": {"depth": 4}}  # from the parent
    chart = get_json(f"{api}/{ids['c']}/metrics/loss?max_points=50")
    assert chart["count"] == 900 and chart["max"] == 8990.0 and chart["min"] == -699.0
    record = Api(remote=url).experiment(ids["c"])
    assert np.array_equal(record.to_numpy("loss")["step"], np.arange(900))


def test_fork_chain_on_the_server_copies_no_point(tmp_path, server, remote_env):
    chain(str(tmp_path), remote=server)
    check_server_chain(server)


def test_fork_chain_logged_offline_then_synced(tmp_path, server, remote_env):
    root = str(tmp_path)
    chain(root)
    # children first: a fork whose parent is not on the server yet is recorded when the parent arrives
    paths = [os.path.join(root, "alice", "proj", p) for p in "cba"]
    results = sync_paths(paths, server, show_progress=False)
    assert all(r.error is None for r in results), results
    results = sync_paths(paths, server, show_progress=False)
    assert all(r.error is None for r in results), results
    check_server_chain(server)


def test_rerun_from_step_0_supersedes_everything_and_append_supersedes_nothing(tmp_path):
    root = str(tmp_path)
    log(root, "x", range(300), float)
    exp = log(root, "x", range(300), lambda s: -float(s))
    rows = exp.metrics.read(resolved=True)
    assert [r["metrics"]["loss"] for r in rows] == [-float(s) for s in range(300)]
    assert len(exp.metrics.read()) == 600 and len(exp.metrics.read(superseded=True)) == 300
    exp = log(root, "x", [1000], float, append=True)
    assert [r["step"] for r in exp.metrics.read(resolved=True)] == [*range(300), 1000]
