"""A real 4-process torch.distributed job (gloo on CPU, spawned on 127.0.0.1): one run on the server with every
rank's points under its rank, ranks and job id found without being told."""
from __future__ import annotations

import pytest

from ml_dash.server.testing import free_port

from .conftest import child_env, experiment_id, get_json, run_child

pytest.importorskip("torch.distributed")

JOB = r"""
import os, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ml_dash import Experiment

def worker(rank, world, root, remote, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    exp = Experiment(namespace="a", workspace="b", prefix="ddp", local_root=root, remote=remote)
    with exp.run():
        for step in range(20):
            value = torch.tensor([float(rank)])
            dist.all_reduce(value)
            exp.metrics.log(step=step, loss=float(rank * 100 + step), total=value.item())
        print(f"hello from rank {rank}")
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(worker, args=(4, sys.argv[1], sys.argv[2], sys.argv[3]), nprocs=4, join=True)
"""


def test_a_gloo_job_of_four_ranks_is_one_run_with_every_ranks_points(tmp_path, server):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    done = run_child(f"import runpy, sys; sys.argv = [{str(script)!r}] + sys.argv[1:]; "
                     f"runpy.run_path({str(script)!r}, run_name='__main__')",
                     str(tmp_path / "root"), server, str(free_port()), env=child_env(), timeout=240)
    assert done.returncode == 0, done.stderr
    eid = experiment_id(server, "ddp")
    record = get_json(f"{server}/api/v1/experiments/{eid}")
    assert record["status"] == "COMPLETED"
    runs = record["runs"]
    assert sorted(r["rank"] for r in runs) == [0, 1, 2, 3]
    assert len({r["job_id"] for r in runs}) == 1 and runs[0]["job_id"].startswith("parent:127.0.0.1:")
    assert {r["world_size"] for r in runs} == {4}
    for rank in range(4):
        series = get_json(f"{server}/api/v1/experiments/{eid}/metrics/loss?rank={rank}")
        assert series["steps"] == list(range(20)) and series["values"] == [float(rank * 100 + s) for s in range(20)]
        assert get_json(f"{server}/api/v1/experiments/{eid}/metrics/total?rank={rank}")["values"] == [6.0] * 20
    lines = get_json(f"{server}/api/v1/experiments/{eid}/console")["lines"]
    assert sorted((line["rank"], line["line"]) for line in lines if line["line"].startswith("hello")) == \
        [(r, f"hello from rank {r}") for r in range(4)]
