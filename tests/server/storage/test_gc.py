"""Purging soft-deleted experiments (``ml-dash server gc``) on every backend: rows in batches, shared blobs kept."""
from __future__ import annotations

import asyncio
import os

import pytest

from ml_dash.server.errors import NotFound


async def _experiment(storage, prefix, shas):
    experiment_id, _ = await storage.create_experiment("alice", "vision", "", prefix, None, None)
    run_id = await storage.create_run(experiment_id, "c", None, 1.0)
    for i in range(5):  # five chunks per metric, two metrics
        events = [{"timestamp": 1.0, "step": s, "metrics": {"loss": float(s), "acc": 1.0}}
                  for s in range(i * 5000, i * 5000 + 5000)]
        await storage.apply_batch(experiment_id, run_id, "metrics", "m", i, i + 1, events)
    await storage.apply_batch(experiment_id, run_id, "parameters", "p", 0, 1,
                              [{"timestamp": 1.0, "operation": "set", "data": {"lr": 0.1}}] * 7)
    await storage.apply_batch(experiment_id, run_id, "logs", "l", 0, 1,
                              [{"timestamp": 1.0, "level": "INFO", "message": f"m{i}", "context": None}
                               for i in range(11)])
    for i, sha in enumerate(shas):
        await storage.put_file(experiment_id, f"f{i}.bin", 3, sha)
    await storage.set_environment(experiment_id, {"python": "3.12"})
    return experiment_id


async def test_purge_removes_deleted_experiments_in_batches_and_keeps_shared_blobs(storage):
    """Only the deleted experiment's rows go; a blob another experiment still names is kept, its own are dropped."""
    shared, own = "a" * 64, ["b" * 64, "c" * 64, "d" * 64, "e" * 64]
    keep = await _experiment(storage, "keep", [shared])
    gone = await _experiment(storage, "gone", [shared, *own])
    later = await _experiment(storage, "later", [])
    await storage.set_deleted(gone, True)
    cutoff = (await storage.get_experiment(gone))["deleted_at"] + 0.001
    await asyncio.sleep(0.01)
    await storage.set_deleted(later, True)  # deleted after the cutoff: stays this time
    dropped = []

    async def drop(sha):
        dropped.append(sha)

    counts = await storage.purge_deleted(before=cutoff, batch=3, drop_blob=drop)
    assert counts["experiments"] == 1 and counts["files"] == 5 and counts["blobs"] == 4 and sorted(dropped) == own
    assert counts["logs"] == 11 and counts["parameters"] == 7 and counts["metric_names"] == 2
    assert counts["runs"] == 1 and counts["metric_chunks"] >= 2
    with pytest.raises(NotFound):
        await storage.get_experiment(gone)
    series = await storage.metric_series(keep, "loss", None, None)
    assert len(series.values) == 25_000 and [f["sha256"] for f in await storage.list_files(keep)] == [shared]
    assert len(await storage.logs(keep, None, None)) == 11
    listed = (await storage.experiment_page(None, include_deleted=True))[1]
    assert sorted(e["prefix"] for e in listed) == ["keep", "later"]
    assert [x[1] for x in await storage.deleted_experiments()] == [later]
    # the same prefix can be created again, as a new experiment
    again, created = await storage.create_experiment("alice", "vision", "", "gone", None, None)
    assert created and again != gone
    assert (await storage.purge_deleted(before=cutoff))["experiments"] == 0


def test_gc_command_purges_and_deletes_unreferenced_blobs(tmp_path, capsys):
    """`ml-dash server gc --data DIR` purges what was deleted and removes the blob files nobody names."""
    from ml_dash.cli import main
    from ml_dash.server.config import ServerConfig
    from ml_dash.server.files.local import BlobStore
    from ml_dash.server.storage.sqlite.storage import SQLiteStorage

    data = str(tmp_path / "data")
    config = ServerConfig(data_dir=data)
    blobs = BlobStore(data)

    async def seed():
        storage = SQLiteStorage(config.sqlite_path)
        await storage.open()

        async def chunks(payload):
            yield payload

        try:
            sha_keep, _ = await blobs.put(chunks(b"keep"), 100)
            sha_gone, _ = await blobs.put(chunks(b"gone"), 100)
            keep = await _experiment(storage, "keep", [sha_keep])
            gone = await _experiment(storage, "gone", [sha_gone, sha_keep])
            await storage.set_deleted(gone, True)
            return sha_keep, sha_gone
        finally:
            await storage.close()

    sha_keep, sha_gone = asyncio.run(seed())
    assert main(["server", "gc", "--data", data, "--dry-run"]) == 0
    assert "would purge alice/vision/gone" in capsys.readouterr().out and os.path.exists(blobs.path_of(sha_gone))
    assert main(["server", "gc", "--data", data]) == 0
    out = capsys.readouterr().out
    assert "purged 1 experiment(s)" in out and "1 blob(s) deleted" in out
    assert not os.path.exists(blobs.path_of(sha_gone)) and os.path.exists(blobs.path_of(sha_keep))

    async def stray():  # a blob no record names (a re-saved file's old version), and one just uploaded
        async def chunks(payload):
            yield payload

        old, _ = await blobs.put(chunks(b"old version"), 100)
        young, _ = await blobs.put(chunks(b"in flight"), 100)
        os.utime(blobs.path_of(old), (1.0, 1.0))
        return old, young

    old, young = asyncio.run(stray())
    assert main(["server", "gc", "--data", data, "--sweep-blobs"]) == 0
    assert "1 blob(s) deleted" in capsys.readouterr().out
    assert not os.path.exists(blobs.path_of(old)) and os.path.exists(blobs.path_of(young))
    assert os.path.exists(blobs.path_of(sha_keep))
