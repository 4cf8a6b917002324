"""gc against what happens while it runs, on every backend: a restore, a script run again, ingest into the deleted
experiment, another process's id → pk knowledge, and a late run registration after a delete."""
from __future__ import annotations

import pytest

from ml_dash.server.errors import NotFound
from tests.server.storage.test_gc import _experiment

LOGS = [{"timestamp": 1.0, "level": "INFO", "message": f"new{i}", "context": None} for i in range(3)]


async def _counts(storage, experiment_id):
    return {"logs": len(await storage.logs(experiment_id, None, None)),
            "params": len(await storage.parameter_ops(experiment_id)),
            "runs": len(await storage.list_runs(experiment_id)),
            "streams": await storage.stream_offsets(experiment_id),
            "points": len((await storage.metric_series(experiment_id, "loss", None, None)).values),
            "files": len(await storage.list_files(experiment_id))}


async def test_a_restore_between_purge_batches_stops_the_purge(storage):
    """Restored after gc's first batch: every later batch sees it live and leaves it alone, the stream offsets and
    the experiment row included; gc reports it purged nothing."""
    kept = await _experiment(storage, "x", ["a" * 64])
    await storage.set_deleted(kept, True)
    restored = []

    async def restore(table):
        if not restored:
            restored.append((table, await storage.set_deleted(kept, False)))

    counts = await storage.purge_deleted(batch=2, after_batch=restore)
    assert restored == [(restored[0][0], None)]
    assert counts["experiments"] == 0 and counts["files"] == 0 and counts["runs"] == 0
    assert sum(counts.get(t, 0) for t in ("logs", "parameters", "metric_chunks", "metric_summaries")) <= 2
    record = await storage.get_experiment(kept)
    assert record["deleted_at"] is None
    found = await _counts(storage, kept)
    assert found["runs"] == 1 and found["files"] == 1 and found["streams"] == {"m": 5, "p": 1, "l": 1}
    assert found["logs"] + found["params"] >= 11 + 7 - 2 and found["points"] >= 25_000 - 2 * 5000
    assert await storage.deleted_experiments() == []


async def test_a_script_run_again_during_gc_keeps_its_run_and_logs(storage):
    """Restoring by running the script again (a new run) while gc runs: the new run, its logs uploaded after the
    restore and every stream offset survive, and gc ends without an error."""
    experiment_id = await _experiment(storage, "again", [])
    await storage.set_deleted(experiment_id, True)
    new_run = []

    async def run_again(table):
        if not new_run:
            again, _ = await storage.create_experiment("alice", "vision", "", "again", None, None)
            assert again == experiment_id
            new_run.append(await storage.create_run(experiment_id, "second", None, None))
            await storage.apply_batch(experiment_id, new_run[0], "logs", "l2", 0, 1, LOGS)
            await storage.apply_batch(experiment_id, new_run[0], "metrics", "m2", 0, 1,
                                      [{"timestamp": 2.0, "step": 10**6, "metrics": {"loss": 0.5}}])

    counts = await storage.purge_deleted(batch=3, after_batch=run_again)
    assert counts["experiments"] == 0 and counts["runs"] == 0
    assert (await storage.get_experiment(experiment_id))["deleted_at"] is None
    assert [r["id"] for r in await storage.list_runs(experiment_id)][-1] == new_run[0]
    messages = [e["message"] for e in await storage.logs(experiment_id, None, None)]
    assert messages[-3:] == ["new0", "new1", "new2"]
    offsets = await storage.stream_offsets(experiment_id)
    assert offsets["l2"] == 1 and offsets["m2"] == 1 and offsets["m"] == 5 and offsets["l"] == 1
    series = await storage.metric_series(experiment_id, "loss", None, None)
    assert series.steps[-1] == 10**6


async def test_ingest_into_the_deleted_experiment_during_gc_is_purged_too(storage):
    """A still-running client keeps uploading to the deleted experiment while gc purges it: gc removes those rows as
    well and then the experiment, instead of dying on a foreign key."""
    experiment_id = await _experiment(storage, "busy", [])
    run_id = (await storage.list_runs(experiment_id))[0]["id"]
    await storage.set_deleted(experiment_id, True)
    sent = []

    async def keep_uploading(table):
        if table in ("logs", "metric_names") and len(sent) < 2:
            sent.append(table)
            await storage.apply_batch(experiment_id, run_id, "logs", "l", len(sent), len(sent) + 1, LOGS)
            await storage.apply_batch(experiment_id, run_id, "metrics", "m", 4 + len(sent), 5 + len(sent),
                                      [{"timestamp": 2.0, "step": 10**6 + len(sent), "metrics": {"late": 1.0}}])

    counts = await storage.purge_deleted(batch=1000, after_batch=keep_uploading)
    assert sent and counts["experiments"] == 1 and counts["logs"] == 11 + 3 * len(sent)
    with pytest.raises(NotFound):
        await storage.get_experiment(experiment_id)
    with pytest.raises(NotFound):  # and a batch after the purge is refused by id, not a foreign-key error
        await storage.apply_batch(experiment_id, run_id, "logs", "l", 9, 10, LOGS)


async def test_a_purged_id_never_answers_with_another_experiments_data(storage, storage_factory):
    """The server read X (and so knows its pk); another process (`ml-dash server gc`) purges X; Y is created and
    logs. X must stay unknown: its series, its logs and a batch sent to it never reach Y's rows, and the series cache
    keeps nothing of X (SQLite hands a purged experiment's integer key to the next experiment)."""
    x = await _experiment(storage, "x", [])
    assert len((await storage.metric_series(x, "loss", None, None)).values) == 25_000  # cached: id → pk, series
    x_run = (await storage.list_runs(x))[0]["id"]
    await storage.set_deleted(x, True)
    gc = storage_factory()
    await gc.open()
    try:
        assert (await gc.purge_deleted())["experiments"] == 1
    finally:
        await gc.close()
    y, _ = await storage.create_experiment("bob", "other", "", "y", None, None)
    y_run = await storage.create_run(y, "c", None, 1.0)
    await storage.apply_batch(y, y_run, "metrics", "m", 0, 1,
                              [{"timestamp": 1.0, "step": s, "metrics": {"loss": 7.0}} for s in range(3)])
    await storage.apply_batch(y, y_run, "logs", "l", 0, 1, LOGS)
    for read in (lambda: storage.metric_series(x, "loss", None, None, 100), lambda: storage.logs(x, None, None),
                 lambda: storage.stream_offsets(x), lambda: storage.metric_step_times(x, "loss", 10),
                 lambda: storage.apply_batch(x, None, "logs", "l", 1, 2, LOGS),
                 lambda: storage.apply_batch(x, x_run, "logs", "l", 1, 2, LOGS)):
        with pytest.raises(NotFound):
            await read()
    cache = storage._series_cache
    assert cache is None or cache.get((x, "loss")) is None
    assert len(await storage.logs(y, None, None)) == 3 and (await storage.stream_offsets(y)) == {"m": 1, "l": 1}


async def test_a_late_registration_does_not_undo_a_delete(storage):
    """A run that started before the experiment was deleted, registering only now (its uploader was offline), keeps
    the experiment deleted; its data is kept, hidden with the rest. A run started after the delete brings it back."""
    experiment_id = await _experiment(storage, "late", [])
    deleted_at = await storage.set_deleted(experiment_id, True)
    late = await storage.create_run(experiment_id, "late-run", None, deleted_at - 60)
    await storage.apply_batch(experiment_id, late, "logs", "late", 0, 1, LOGS)
    assert (await storage.get_experiment(experiment_id))["deleted_at"] == deleted_at
    assert late in [r["id"] for r in await storage.list_runs(experiment_id)]
    again = await storage.create_run(experiment_id, "late-run", None, deleted_at - 60)  # a retried registration
    assert again == late and (await storage.get_experiment(experiment_id))["deleted_at"] == deleted_at
    await storage.create_run(experiment_id, "rerun", None, deleted_at + 1)
    assert (await storage.get_experiment(experiment_id))["deleted_at"] is None
