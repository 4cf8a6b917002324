"""``ml-dash sync`` of a distributed job logged offline: every rank's streams reach the server once, as one job."""
from __future__ import annotations

import os
import subprocess
import sys

from ml_dash.client.upload.sync_command import format_summary, sync_paths

from ml_dash.format.layout import stream_path

from .conftest import child_env, experiment_id, get_json

OFFLINE_RANK = r"""
import sys
from ml_dash import Experiment
rank, root = int(sys.argv[1]), sys.argv[2]
exp = Experiment(namespace="a", workspace="b", prefix="offline-job", local_root=root, rank=rank, world_size=3,
                 job_id="job-7", system_metrics=True)
with exp.run():
    for step in range(40):
        exp.metrics.log(step=step, loss=float(rank * 1000 + step))
    print(f"rank {rank} done")
"""


def _lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def test_sync_uploads_every_rank_of_an_offline_job_once_as_one_job(tmp_path, server):
    root = str(tmp_path / "root")
    children = [subprocess.Popen([sys.executable, "-c", OFFLINE_RANK, str(rank), root], env=child_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(3)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    directory = os.path.join(root, "a", "b", "offline-job")

    results = sync_paths([directory], remote=server, show_progress=False)
    assert [r.error for r in results] == [None, None, None], format_summary(results)
    assert sorted(r.rank for r in results) == [0, 1, 2]
    # each rank's own streams: its metrics, its system samples (as many as it wrote), its console line
    system_rows = [_lines(stream_path(directory, "system", r.rank)) for r in results]
    assert sum(system_rows) > 0
    assert [(r.events["metrics"], r.events["system"], r.events["console"]) for r in results] == \
        [(40, rows, 1) for rows in system_rows], format_summary(results)

    eid = experiment_id(server, "offline-job")
    record = get_json(f"{server}/api/v1/experiments/{eid}")
    assert record["status"] == "COMPLETED"
    assert sorted((r["rank"], r["job_id"], r["world_size"], r["status"]) for r in record["runs"]) == \
        [(rank, "job-7", 3, "COMPLETED") for rank in range(3)]
    for rank in range(3):
        series = get_json(f"{server}/api/v1/experiments/{eid}/metrics/loss?rank={rank}")
        assert series["steps"] == list(range(40))  # each point exactly once
        assert series["values"] == [float(rank * 1000 + s) for s in range(40)]
    lines = get_json(f"{server}/api/v1/experiments/{eid}/console")["lines"]
    assert sorted((line["rank"], line["line"]) for line in lines) == [(r, f"rank {r} done") for r in range(3)]

    again = sync_paths([directory], remote=server, show_progress=False)
    assert [sum(r.events.values()) for r in again] == [0, 0, 0]
    assert all(r.error is None for r in again)
    assert len(get_json(f"{server}/api/v1/experiments/{eid}")["runs"]) == 3
    for rank in range(3):
        assert get_json(f"{server}/api/v1/experiments/{eid}/metrics/loss?rank={rank}")["count"] == 40


def test_sync_finds_a_directory_holding_only_another_host_s_rank(tmp_path, server):
    from ml_dash import Experiment

    root = str(tmp_path / "root")
    exp = Experiment(namespace="a", workspace="b", prefix="host-b", local_root=root, rank=1, world_size=2,
                     job_id="job-8", console=False, system_metrics=False)
    with exp.run():
        exp.metrics.log(step=0, loss=5.0)
    results = sync_paths([root], remote=server, show_progress=False)
    assert [(r.rank, r.error, r.events["metrics"]) for r in results] == [(1, None, 1)], format_summary(results)
    assert "[rank 1]" in format_summary(results)
    eid = experiment_id(server, "host-b")
    runs = get_json(f"{server}/api/v1/experiments/{eid}")["runs"]
    assert [(r["rank"], r["job_id"], r["world_size"]) for r in runs] == [(1, "job-8", 2)]
    assert get_json(f"{server}/api/v1/experiments/{eid}/metrics/loss?rank=1")["values"] == [5.0]
