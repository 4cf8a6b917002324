"""Storage-level behaviour every backend must share (parametrized by the db_url fixture)."""
from __future__ import annotations

import asyncio
import math

import pytest

from ml_dash.server.errors import NotFound, StreamConflict
from ml_dash.format.params import replay


async def test_failed_batch_leaves_nothing_half_written(storage):
    """An insert failing part-way through a batch rolls back its rows and its offset."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    good = [{"timestamp": 1.0, "step": i, "metrics": {"loss": float(i)}} for i in range(100)]
    unstorable = {"timestamp": 1.0, "step": 100, "metrics": {"loss": object()}}  # fails inside the transaction
    with pytest.raises(Exception):
        await storage.apply_batch(experiment_id, None, "metrics", "s", 0, 10, good + [unstorable])
    assert await storage.stream_offsets(experiment_id) == {}
    assert await storage.metric_series(experiment_id, "loss", None, None) is None
    result = await storage.apply_batch(experiment_id, None, "metrics", "s", 0, 10, good)
    assert (result.acked, result.stored) == (10, 100)


async def test_offsets_replay_and_conflict(storage):
    """start == acked stores, end <= acked is a duplicate, anything else is a conflict carrying acked."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    event = [{"timestamp": 1.0, "step": 0, "metrics": {"x": 1}}]
    assert (await storage.apply_batch(experiment_id, None, "metrics", "s", 0, 5, event)).acked == 5
    assert (await storage.apply_batch(experiment_id, None, "metrics", "s", 0, 5, event)).duplicate
    with pytest.raises(StreamConflict) as conflict:
        await storage.apply_batch(experiment_id, None, "metrics", "s", 3, 8, event)
    assert conflict.value.acked == 5
    with pytest.raises(NotFound):
        await storage.apply_batch("missing", None, "metrics", "s", 0, 5, event)


async def test_concurrent_batches_on_distinct_streams_all_land(storage):
    """Many streams written concurrently each end at their own offset with every point stored."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)

    async def client(n: int) -> None:
        for k in range(5):
            events = [{"timestamp": 1.0, "step": k * 10 + i, "metrics": {"m": float(n)}} for i in range(10)]
            await storage.apply_batch(experiment_id, None, "metrics", f"c{n}", k * 100, (k + 1) * 100, events)

    await asyncio.gather(*(client(n) for n in range(8)))
    assert await storage.stream_offsets(experiment_id) == {f"c{n}": 500 for n in range(8)}
    assert len((await storage.metric_series(experiment_id, "m", None, None)).values) == 8 * 50


async def test_values_and_last_metrics_round_trip(storage):
    """NaN and null stay distinct; bools and big ints survive; last value per name is the latest stored."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    events = [{"timestamp": 1.0, "step": 0, "metrics": {"a": math.nan, "b": None, "c": True, "d": 2**62}},
              {"timestamp": 2.0, "step": 1, "metrics": {"a": -math.inf}}]
    await storage.apply_batch(experiment_id, None, "metrics", "s", 0, 1, events)
    last = await storage.last_metrics(experiment_id)
    assert last["a"] == -math.inf and last["b"] is None and last["c"] is True and last["d"] == 2**62
    series = await storage.metric_series(experiment_id, "a", None, None)
    assert math.isnan(series.values[0]) and series.values[1] == -math.inf


async def test_points_without_step_read_back_with_nan_step(storage):
    """A metric logged without a step keeps a missing (NaN) step, ordered before stepped points."""
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    events = [{"timestamp": 1.0, "step": 3, "metrics": {"a": 1.0}}, {"timestamp": 2.0, "step": None, "metrics": {"a": 2.0}}]
    await storage.apply_batch(experiment_id, None, "metrics", "s", 0, 1, events)
    series = await storage.metric_series(experiment_id, "a", None, None)
    assert math.isnan(series.steps[0]) and series.steps[1] == 3 and series.values.tolist() == [2.0, 1.0]


def test_replay_semantics():
    """set replaces everything, extend deep-merges, update writes a dotted key."""
    ops = [{"operation": "set", "data": {"a": {"b": 1}, "old": 1}},
           {"operation": "set", "data": {"a": {"b": 1, "c": 2}}},
           {"operation": "extend", "data": {"a": {"c": 3, "d": 4}}},
           {"operation": "update", "key": "a.e.f", "value": 5}]
    assert replay(ops) == {"a": {"b": 1, "c": 3, "d": 4, "e": {"f": 5}}}
