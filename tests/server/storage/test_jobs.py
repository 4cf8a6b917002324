"""Distributed jobs, heartbeats and the console in storage, on every backend (docs/distributed.md)."""
from __future__ import annotations

import asyncio

from ml_dash.server.http.app import watch_heartbeats


def job(rank, heartbeat=True, job_id="j"):
    return {"job_id": job_id, "rank": rank, "world_size": 3, "heartbeat": heartbeat}


async def _status(storage, experiment_id):
    return (await storage.get_experiment(experiment_id))["status"]


async def test_a_jobs_status_comes_from_all_its_ranks(storage):
    eid, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    runs = [await storage.create_run(eid, f"c{rank}", None, 1.0 + rank, job(rank)) for rank in range(3)]
    assert await _status(storage, eid) == "RUNNING"
    await storage.update_run(runs[0], "COMPLETED", None, None)
    await storage.update_run(runs[2], "COMPLETED", None, None)
    assert await _status(storage, eid) == "RUNNING"  # rank 1 still runs
    await storage.update_run(runs[1], "FAILED", "ValueError: rank 1", None)
    assert await _status(storage, eid) == "FAILED"
    listed = await storage.list_runs(eid)
    assert [(r["rank"], r["job_id"], r["world_size"], r["status"]) for r in listed] == \
        [(0, "j", 3, "COMPLETED"), (1, "j", 3, "FAILED"), (2, "j", 3, "COMPLETED")]
    assert [e["status"] for e in await storage.list_experiments(None, None, "FAILED", 10, 0)] == ["FAILED"]
    # a later job of the same experiment (a new launch) is what the experiment's status follows
    later = [await storage.create_run(eid, f"d{rank}", None, 10.0 + rank, job(rank, job_id="k")) for rank in range(2)]
    for run in later:
        await storage.update_run(run, "COMPLETED", None, None)
    assert await _status(storage, eid) == "COMPLETED"


async def test_runs_whose_heartbeats_stop_are_crashed_and_revived_by_a_late_one(storage):
    eid, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    beating = await storage.create_run(eid, "beat", None, 1.0, {"heartbeat": True})
    silent = await storage.create_run(eid, "silent", None, 1.0, None)  # an older client: never judged
    now = (await storage.get_run(beating))["heartbeat_at"]
    assert await storage.mark_crashed(now + 5, 10) == 0
    assert await storage.heartbeat(beating, now + 8) == "RUNNING"
    assert await storage.mark_crashed(now + 17, 10) == 0  # 9 s since the last beat
    assert await storage.mark_crashed(now + 19, 10) == 1
    assert await storage.mark_crashed(now + 19, 10) == 0  # idempotent: several workers run it
    run = await storage.get_run(beating)
    assert run["status"] == "CRASHED" and run["ended_at"] == now + 8 and "no heartbeat" in run["error"]
    assert (await storage.get_run(silent))["status"] == "RUNNING"
    # a late upload still lands once; a late heartbeat says it was alive after all; a late final status wins
    event = [{"timestamp": 1.0, "step": 0, "metrics": {"x": 1.0}}]
    assert (await storage.apply_batch(eid, beating, "metrics", "s", 0, 5, event)).stored == 1
    assert (await storage.apply_batch(eid, beating, "metrics", "s", 0, 5, event)).duplicate
    assert await storage.heartbeat(beating, now + 30) == "RUNNING"
    assert (await storage.get_run(beating))["ended_at"] is None
    assert await storage.mark_crashed(now + 50, 10) == 1
    await storage.update_run(beating, "COMPLETED", None, None)
    assert (await storage.get_run(beating))["status"] == "COMPLETED"
    assert await storage.mark_crashed(now + 500, 10) == 0


async def test_the_watch_marks_crashed_runs_on_its_clock(storage):
    eid, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    run = await storage.create_run(eid, "beat", None, 1.0, {"heartbeat": True})
    start = (await storage.get_run(run))["heartbeat_at"]
    task = asyncio.create_task(watch_heartbeats(storage, 0.04, clock=lambda: start + 3600))
    try:
        for _ in range(500):
            if (await storage.get_run(run))["status"] == "CRASHED":
                break
            await asyncio.sleep(0.01)
        assert (await storage.get_run(run))["status"] == "CRASHED"
    finally:
        task.cancel()


async def test_console_lines_by_rank_stream_search_and_tail(storage):
    eid, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    run = await storage.create_run(eid, "r1", None, 1.0, job(1))
    rows = [(0, 1.0, "stdout", "epoch 1"), (1, 1.5, "stderr", "50% done_x"), (1, 2.0, "stdout", "epoch 1 rank 1")]
    assert (await storage.apply_batch(eid, run, "console", "c", 0, 10, rows)).stored == 3
    everything = await storage.console(eid, None, None, None, None, 100)
    assert [(line["rank"], line["line"]) for line in everything] == [(r, text) for r, _, _, text in rows]
    assert everything[1]["run_id"] == run
    assert [line["line"] for line in await storage.console(eid, 1, None, None, None, 100)] == \
        ["50% done_x", "epoch 1 rank 1"]
    assert [line["line"] for line in await storage.console(eid, None, "stderr", None, None, 100)] == ["50% done_x"]
    # LIKE wildcards in the search are literal
    assert [line["line"] for line in await storage.console(eid, None, None, "% d", None, 100)] == ["50% done_x"]
    assert await storage.console(eid, None, None, "_%", None, 100) == []
    assert [line["line"] for line in await storage.console(eid, None, None, None, everything[0]["pk"], 1)] == \
        ["epoch 1 rank 1"]
