"""SQLite reads run on a small pool of reader threads, each with its own query-only connection, one snapshot per read."""
from __future__ import annotations

import asyncio
import sqlite3
import threading

import numpy as np
import pytest

from ml_dash.server.storage.sqlite.storage import SQLiteStorage


@pytest.fixture
async def sqlite_storage(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "r.sqlite3"), readers=3)
    await storage.open()
    yield storage
    await storage.close()


async def add(storage, experiment_id, index, steps, name="m"):
    events = [{"timestamp": 1.0, "step": s, "metrics": {name: float(s)}} for s in steps]
    await storage.apply_batch(experiment_id, None, "metrics", "s", index, index + 1, events)


async def test_reads_run_concurrently_on_separate_connections(sqlite_storage):
    storage = sqlite_storage
    barrier = threading.Barrier(3, timeout=10)  # only passes if three reads are in flight at once
    seen = []

    def read(conn):
        assert conn.in_transaction  # every read is one transaction
        barrier.wait()
        seen.append((threading.get_ident(), id(conn)))
        return conn.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]

    assert await asyncio.gather(*(storage.read(read) for _ in range(3))) == [0, 0, 0]
    assert len({thread for thread, _ in seen}) == 3 and len({conn for _, conn in seen}) == 3


async def test_reader_connections_cannot_write(sqlite_storage):
    def write(conn):
        conn.execute("INSERT INTO experiments (id, namespace, workspace, directory, prefix, created_at) "
                     "VALUES ('x', 'a', 'w', '', 'p', 0)")

    with pytest.raises(sqlite3.OperationalError):
        await sqlite_storage.read(write)


async def test_a_read_sees_one_snapshot_while_a_batch_commits(sqlite_storage):
    storage = sqlite_storage
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    await add(storage, experiment_id, 0, range(100))
    loop = asyncio.get_running_loop()

    def read(conn):
        first = conn.execute("SELECT SUM(n) FROM metric_chunks").fetchone()[0]
        # A batch commits on the writer while this read is open; the read must not see it.
        asyncio.run_coroutine_threadsafe(add(storage, experiment_id, 1, range(100, 150)), loop).result(10)
        return first, conn.execute("SELECT SUM(n) FROM metric_chunks").fetchone()[0]

    assert await storage.read(read) == (100, 100)
    series = await storage.metric_series(experiment_id, "m", None, None)
    assert len(series.steps) == 150


async def test_concurrent_series_reads_while_ingesting_agree(sqlite_storage):
    storage = sqlite_storage
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    for i, name in enumerate(("a", "b", "c")):
        await add(storage, experiment_id, i, range(20_000), name)

    async def ingest():
        for i in range(3, 13):
            await add(storage, experiment_id, i, range(20_000 + (i - 3) * 7, 20_000 + (i - 2) * 7), "a")

    reads = [storage.metric_series(experiment_id, name, None, None, 50) for _ in range(4) for name in "abc"]
    *results, _ = await asyncio.gather(*reads, ingest())
    for series in results:
        steps = np.asarray(series.steps)
        assert np.all(steps[1:] >= steps[:-1]) and steps[0] == 0
    final = await storage.metric_series(experiment_id, "a", None, None)
    assert len(final.steps) == 20_070 and final.steps[-1] == 20_069
