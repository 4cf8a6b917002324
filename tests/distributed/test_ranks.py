"""Ranks of a distributed job: each writes and uploads its own streams, the server keeps one run (one job) with a
status from every rank, per-rank series and console lines (docs/distributed.md)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ml_dash.format.layout import stream_path, sync_state_path

from .conftest import child_env, experiment_id, get_json, run_child

RANK_SCRIPT = r"""
import sys
from ml_dash import Experiment
rank, root, remote, steps = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
exp = Experiment(namespace="a", workspace="b", prefix="job", local_root=root, remote=remote)
with exp.run():
    for step in range(steps):
        exp.metrics.log(step=step, loss=float(rank * 1000 + step), **{f"only{rank}": 1.0})
    print(f"rank {rank} done")
    if rank == int(sys.argv[5]):
        raise ValueError(f"rank {rank} gave up")
"""


def launch_ranks(root, remote, world, steps=50, failing=-1, job="job-1"):
    env = child_env(ML_DASH_WORLD_SIZE=str(world), ML_DASH_JOB_ID=job)
    children = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(rank), root, remote, str(steps), str(failing)],
                                 env=dict(env, ML_DASH_RANK=str(rank)), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for rank in range(world)]
    return [(child, *child.communicate(timeout=120)) for child in children]


def test_ranks_in_one_directory_write_their_own_files_and_reach_the_server_as_one_job(tmp_path, server):
    root = str(tmp_path / "root")
    for child, out, err in launch_ranks(root, server, world=3):
        assert child.returncode == 0, err
    directory = os.path.join(root, "a", "b", "job")
    assert os.path.exists(stream_path(directory, "metrics"))  # rank 0 keeps today's names
    assert os.path.exists(stream_path(directory, "metrics", 2)) and os.path.exists(sync_state_path(directory, 2))
    eid = experiment_id(server, "job")
    record = get_json(f"{server}/api/v1/experiments/{eid}")
    assert record["status"] == "COMPLETED"
    assert sorted((r["rank"], r["job_id"], r["world_size"]) for r in record["runs"]) == \
        [(0, "job-1", 3), (1, "job-1", 3), (2, "job-1", 3)]
    # rank 0's series are the plain names; other ranks' are read with ?rank=, each point exactly once
    assert record["metric_names"] == ["loss", "only0"]
    for rank in range(3):
        series = get_json(f"{server}/api/v1/experiments/{eid}/metrics/loss?rank={rank}")
        assert series["steps"] == list(range(50))
        assert series["values"] == [float(rank * 1000 + s) for s in range(50)]
    assert get_json(f"{server}/api/v1/experiments/{eid}/metrics/only2?rank=2")["count"] == 50
    lines = get_json(f"{server}/api/v1/experiments/{eid}/console")["lines"]
    assert sorted((line["rank"], line["line"]) for line in lines) == [(r, f"rank {r} done") for r in range(3)]


def test_a_rank_that_raises_fails_the_job_naming_it_with_its_traceback(tmp_path, server):
    root = str(tmp_path / "root")
    results = launch_ranks(root, server, world=2, failing=1)
    assert [child.returncode for child, _, _ in results] == [0, 1]
    eid = experiment_id(server, "job")
    record = get_json(f"{server}/api/v1/experiments/{eid}")
    assert record["status"] == "FAILED"
    failed = [r for r in record["runs"] if r["status"] == "FAILED"]
    assert [(r["rank"], r["error"]) for r in failed] == [(1, "ValueError: rank 1 gave up")]
    stderr = get_json(f"{server}/api/v1/experiments/{eid}/console?rank=1&stream=stderr")["lines"]
    assert stderr[0]["line"] == "Traceback (most recent call last):"
    assert stderr[-1]["line"] == "ValueError: rank 1 gave up"
    found = get_json(f"{server}/api/v1/experiments/{eid}/console?q=gave%20up")["lines"]
    assert {line["rank"] for line in found} == {1}


KILLED = r"""
import sys
from ml_dash import Experiment
root, remote = sys.argv[1], sys.argv[2]
exp = Experiment(namespace="a", workspace="b", prefix="killed", local_root=root, remote=remote, rank=1,
                 world_size=2, job_id="job-k")
exp.run()
for i in range(5):
    print(f"line {i}")
exp.metrics.log(step=0, loss=1.0)
exp.flush()
import time
deadline = time.time() + 60
while time.time() < deadline:  # until the parent has seen the lines on the server
    if sys.stdin.readline() == "":
        break
"""


def test_kill_9_of_a_rank_keeps_its_flushed_lines_and_the_server_marks_it_crashed(tmp_path, crash_server):
    root = str(tmp_path / "root")
    child = subprocess.Popen([sys.executable, "-c", KILLED, root, crash_server], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=child_env(ML_DASH_HEARTBEAT_INTERVAL="0.2"))
    try:
        deadline = time.monotonic() + 60
        lines: list = []
        while time.monotonic() < deadline:
            found = [e for e in get_json(f"{crash_server}/api/v1/experiments")["experiments"] if e["prefix"] == "killed"]
            if found:
                lines = get_json(f"{crash_server}/api/v1/experiments/{found[0]['id']}/console")["lines"]
                if len(lines) == 5:
                    break
            time.sleep(0.05)  # polling the server for a condition, with a deadline
        assert [line["line"] for line in lines] == [f"line {i}" for i in range(5)]
        eid = found[0]["id"]
        assert get_json(f"{crash_server}/api/v1/experiments/{eid}")["status"] == "RUNNING"  # heartbeats keep it so
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        while time.monotonic() < deadline:
            record = get_json(f"{crash_server}/api/v1/experiments/{eid}")
            if record["status"] != "RUNNING":
                break
            time.sleep(0.05)
        assert record["status"] == "CRASHED"
        assert record["runs"][0]["status"] == "CRASHED" and "no heartbeat" in record["runs"][0]["error"]
        # the local copy has every line that was flushed
        directory = os.path.join(root, "a", "b", "killed")
        with open(stream_path(directory, "console", 1)) as f:
            assert "line 4" in f.read()
    finally:
        if child.poll() is None:
            child.kill()


def test_history_reads_one_rank_or_all_ranks_with_a_rank_column(tmp_path, server):
    from ml_dash import Api

    root = str(tmp_path / "root")
    for child, out, err in launch_ranks(root, server, world=2, steps=5):
        assert child.returncode == 0, err
    for api in (Api(server), Api(local_root=root)):
        record = [r for r in api.experiments(namespace="a", workspace="b") if r.prefix == "job"][0]
        assert record.ranks() == [0, 1]
        assert list(record.history("loss")["loss"]) == [0.0, 1.0, 2.0, 3.0, 4.0]  # rank 0, as a plain run reads
        assert list(record.history("loss", rank=1)["loss"]) == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
        both = record.history("loss", ranks="all")
        assert list(both["rank"]) == [0] * 5 + [1] * 5 and list(both.index) == list(range(5)) * 2
        assert list(both["loss"]) == [0.0, 1.0, 2.0, 3.0, 4.0, 1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
