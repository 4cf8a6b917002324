"""Storage behaviour across several storage instances (as several workers have) and of metric chunks.

The multi-instance tests run where two instances can share one database: on PostgreSQL (two pools = two workers) and
for the chunk tests on every backend.
"""
from __future__ import annotations

import asyncio
import math

import pytest

from ml_dash.server.storage.registry import open_storage

from ..conftest import POSTGRES_URL, postgres_schema_url

needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL tests need ML_DASH_TEST_POSTGRES=postgresql://...")


@pytest.fixture
async def two_workers():
    """Two PostgresStorage instances on one fresh schema, opened at the same time (both run the migrations)."""
    with postgres_schema_url() as url:
        stores = [open_storage(url, "unused"), open_storage(url, "unused")]
        await asyncio.gather(*(s.open() for s in stores))  # the advisory lock serialises the migrations
        yield stores
        await asyncio.gather(*(s.close() for s in stores))


@needs_postgres
async def test_migrations_race_and_record_one_version(two_workers):
    async with two_workers[0]._pool.acquire() as conn:
        from ml_dash.server.storage.postgres.migrations import MIGRATIONS

        versions = [(version,) for version, _ in MIGRATIONS]
        assert await conn.fetch("SELECT version FROM schema_migrations ORDER BY version") == versions


@needs_postgres
async def test_same_batch_on_two_workers_is_stored_once(two_workers):
    """The same batches raced on two instances: each stored exactly once, the other copy answered duplicate."""
    a, b = two_workers
    (experiment_id, created_a), (same_id, created_b) = await asyncio.gather(
        a.create_experiment("n", "w", "", "p", None, None), b.create_experiment("n", "w", "", "p", "readme", None))
    assert experiment_id == same_id and sorted([created_a, created_b]) == [False, True]
    run_ids = await asyncio.gather(*(s.create_run(experiment_id, "r", None, None) for s in (a, b, a, b)))
    assert len(set(run_ids)) == 1
    for k in range(20):
        events = [{"timestamp": 1.0, "step": k * 10 + i, "metrics": {"x": float(i), "y": i}} for i in range(10)]
        results = await asyncio.gather(*(s.apply_batch(experiment_id, run_ids[0], "metrics", "s", k, k + 1, events)
                                         for s in (a, b, a)))
        assert sorted(r.duplicate for r in results) == [False, True, True]
        assert all(r.acked == k + 1 for r in results)
    series = await b.metric_series(experiment_id, "x", None, None)
    assert series.steps.tolist() == list(range(200))
    assert await a.stream_offsets(experiment_id) == {"s": 20}


async def test_small_batches_merge_and_out_of_order_steps_sort(storage):
    """Live-sized batches are merged into few chunks; steps sent out of order still read back sorted and stable."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    offset = 0
    for k in range(30):  # steps 29..0 descending across batches, each batch ascending inside
        events = [{"timestamp": float(k), "step": (29 - k) * 2 + i, "metrics": {"m": float((29 - k) * 2 + i)}}
                  for i in range(2)]
        await storage.apply_batch(experiment_id, None, "metrics", "s", offset, offset + 1, events)
        offset += 1
    series = await storage.metric_series(experiment_id, "m", None, None)
    assert series.steps.tolist() == list(range(60)) and series.values.tolist() == [float(s) for s in range(60)]
    ranged = await storage.metric_series(experiment_id, "m", 10, 19.5)
    assert ranged.steps.tolist() == list(range(10, 20))
    steps, times = await storage.metric_step_times(experiment_id, "m", 5)
    assert steps[0] == 0 and steps[-1] == 59 and len(steps) <= 7


async def test_special_values_and_runs_survive_chunk_merging(storage):
    """null/NaN/bool kinds and big ints survive merging; a different run starts a new chunk."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    runs = [await storage.create_run(experiment_id, f"r{i}", None, None) for i in range(2)]
    values = [None, math.nan, True, 2**62, -math.inf, 1.5]
    for i, value in enumerate(values):
        await storage.apply_batch(experiment_id, runs[i % 2], "metrics", "s", i, i + 1,
                                  [{"timestamp": 1.0, "step": i, "metrics": {"v": value}}])
    series = await storage.metric_series(experiment_id, "v", None, None)
    assert series.kinds.tolist() == [2, 3, 1, 0, 0, 0]
    assert series.values[2] == 1.0 and series.values[3] == 2.0**62 and series.values[4] == -math.inf
    assert (await storage.last_metrics(experiment_id))["v"] == 1.5
    await storage.apply_batch(experiment_id, None, "metrics", "s", 6, 7,
                              [{"timestamp": 1.0, "step": 6, "metrics": {"v": 2**62 + 1}}])
    assert (await storage.last_metrics(experiment_id))["v"] == 2**62 + 1


async def test_logs_and_parameters_keep_order(storage):
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    logs = [{"timestamp": float(i), "level": "ERROR" if i % 3 == 0 else "INFO", "message": f"m{i}",
             "context": {"i": i, "z": 1, "a": 2} if i % 2 else None} for i in range(500)]
    await storage.apply_batch(experiment_id, None, "logs", "l", 0, 1, logs)
    got = await storage.logs(experiment_id, None, None)
    assert [e["message"] for e in got] == [f"m{i}" for i in range(500)]
    assert list(got[1]["context"]) == ["i", "z", "a"]  # key order kept
    assert [e["message"] for e in await storage.logs(experiment_id, "ERROR", 2)] == ["m495", "m498"]
    params = [{"timestamp": 1.0, "operation": "set", "data": {"b": i, "a": i}} for i in range(300)]
    await storage.apply_batch(experiment_id, None, "parameters", "p", 0, 1, params)
    ops = await storage.parameter_ops(experiment_id)
    assert [op["data"]["b"] for op in ops] == list(range(300)) and list(ops[0]["data"]) == ["b", "a"]


async def test_nul_characters_are_a_bad_request_not_a_server_error(client):
    """PostgreSQL cannot store NUL in text: every backend answers 400 or stores it, never 500."""
    from ..conftest import metric_batch, new_experiment, post_batch

    experiment_id = await new_experiment(client)
    answer = await post_batch(client, experiment_id, metric_batch(0, 1, range(1), name="bad\x00name"))
    assert answer.status in (200, 400), await answer.text()
    logs = {"run_id": None, "stream": "logs", "stream_id": "l", "start": 0, "end": 1,
            "events": [{"timestamp": 1.0, "level": "INFO", "message": "a\x00b"}]}
    assert (await post_batch(client, experiment_id, logs)).status in (200, 400)
    assert (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/x%00y")).status in (200, 400, 404)
