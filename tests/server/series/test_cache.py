"""The decoded-series cache: hits, live appends, merges into the tail chunk, eviction, and two workers on one DB.

Every check compares against a storage opened with the cache off (``ML_DASH_SERIES_CACHE_MB=0``), which reads the
chunks plainly, so "correct" means "the same answer the database gives without any cache".
"""
from __future__ import annotations

import contextlib
import random

import numpy as np
import pytest

from ml_dash.server.config import ServerConfig
from ml_dash.server.series.cache import SeriesCache
from ml_dash.server.series.codec import RAW


@contextlib.asynccontextmanager
async def opened(storage_factory, mb: float | None = None):
    store = storage_factory() if mb is None else storage_factory(series_cache_mb=mb)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class Writer:
    """Appends batches of (step, value) points to metric ``m`` of one experiment, through any storage."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id, self.offset = experiment_id, 0

    async def write(self, storage, points, name="m") -> None:
        events = [{"timestamp": 1000.0 + i, "step": s, "metrics": {name: v}} for i, (s, v) in enumerate(points)]
        await storage.apply_batch(self.experiment_id, None, "metrics", "s", self.offset, self.offset + 1, events)
        self.offset += 1


async def new_writer(storage) -> Writer:
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    return Writer(experiment_id)


def same(a, b) -> bool:
    """Identical series, NaN included (compared as bytes)."""
    return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in
               ((a.steps, b.steps), (a.values, b.values), (a.kinds, b.kinds)))


async def assert_reads_agree(plain, cached_stores, experiment_id, name="m", ranges=((None, None), (5, 40))):
    for step_min, step_max in ranges:
        want = await plain.metric_series(experiment_id, name, step_min, step_max)
        for store in cached_stores:
            got = await store.metric_series(experiment_id, name, step_min, step_max)
            assert same(got, want), (step_min, step_max, got, want)


async def test_hit_returns_the_identical_series(storage_factory):
    async with opened(storage_factory) as cached, opened(storage_factory, 0) as plain:
        writer = await new_writer(cached)
        await writer.write(cached, [(s, s * 0.5) for s in range(50)])
        await writer.write(cached, [(None, None), (7, float("nan")), (3, True), (60, float("inf"))])  # unordered
        first = await cached.metric_series(writer.experiment_id, "m", None, None)
        second = await cached.metric_series(writer.experiment_id, "m", None, None)
        assert second is first  # served from memory: nothing changed in the database
        assert len(cached._series_cache) == 1 and plain._series_cache is None
        await assert_reads_agree(plain, [cached], writer.experiment_id, ranges=((None, None), (5, 40), (None, 3),
                                                                                (60, None), (100, 200)))
        assert not first.steps.flags.writeable
        assert await cached.metric_series(writer.experiment_id, "nope", None, None) is None


async def test_live_append_and_merges_into_the_tail_are_seen_exactly(storage_factory):
    """One-point batches merge into the tail chunk (its pk changes each time); every read matches the database."""
    async with opened(storage_factory) as cached, opened(storage_factory, 0) as plain:
        writer = await new_writer(cached)
        await writer.write(cached, [(s, float(s)) for s in range(20)])
        await cached.metric_series(writer.experiment_id, "m", None, None)
        buffer = cached._series_cache.get((writer.experiment_id, "m")).buffer
        for step in range(20, 45):
            await writer.write(cached, [(step, float(step))])
            series = await cached.metric_series(writer.experiment_id, "m", None, None)
            assert series.steps.tolist() == list(range(step + 1)) and series.values.tolist() == list(range(step + 1))
        entry = cached._series_cache.get((writer.experiment_id, "m"))
        assert entry.n == 45 and entry.buffer is not buffer  # grew once past the exact first-read size...
        buffer = entry.buffer
        await writer.write(cached, [(45, 45.0)])
        await cached.metric_series(writer.experiment_id, "m", None, None)
        assert cached._series_cache.get((writer.experiment_id, "m")).buffer is buffer  # ...then appends in place
        await assert_reads_agree(plain, [cached], writer.experiment_id)


async def test_earlier_answers_do_not_change_under_later_appends(storage_factory):
    async with opened(storage_factory) as cached:
        writer = await new_writer(cached)
        await writer.write(cached, [(s, 1.0) for s in range(10)])
        held = [await cached.metric_series(writer.experiment_id, "m", None, None)]
        for step in range(10, 30):
            await writer.write(cached, [(step, 2.0)])
            held.append(await cached.metric_series(writer.experiment_id, "m", None, None))
        for i, series in enumerate(held):
            assert series.steps.tolist() == list(range(10 + i))
            assert series.values.tolist() == [1.0] * 10 + [2.0] * i


async def test_eviction_keeps_the_cache_within_its_size(storage_factory):
    point_bytes = 17  # float64 step + float64 value + int8 kind
    async with opened(storage_factory, 250 * point_bytes / 2**20) as cached, \
            opened(storage_factory, 0) as plain:
        writer = await new_writer(cached)
        await writer.write(cached, [(s, float(s)) for s in range(100)] , name="a")
        await writer.write(cached, [(s, float(s)) for s in range(100)], name="b")
        await writer.write(cached, [(s, float(s)) for s in range(100)], name="c")
        await writer.write(cached, [(s, float(s)) for s in range(300)], name="big")  # more than the whole cache
        cache = cached._series_cache
        for name in ("a", "b", "c", "big"):
            await assert_reads_agree(plain, [cached], writer.experiment_id, name)
            assert cache.bytes <= cache.max_bytes
        # Full reads put a, b, c in turn; c pushed a out (LRU); big was served but never kept.
        keys = [k[1] for k in cache._entries]
        assert keys == ["b", "c"]
        await cached.metric_series(writer.experiment_id, "b", None, None)  # b becomes the most recent
        await cached.metric_series(writer.experiment_id, "a", None, None)
        assert [k[1] for k in cache._entries] == ["b", "a"]


async def test_two_workers_on_one_database_stay_correct(storage_factory):
    """Two storages (as two server processes) each with their own cache, writes going through either."""
    async with opened(storage_factory) as one, opened(storage_factory) as two, \
            opened(storage_factory, 0) as plain:
        writer = await new_writer(one)
        rng = random.Random(5)
        step = 0
        for round_ in range(30):
            size = rng.choice([1, 1, 2, 3, 40])
            if rng.random() < 0.15:  # out of order, and sometimes without steps: the cache must sort
                points = [(rng.choice([None, rng.randrange(0, step + 1)]), rng.random()) for _ in range(size)]
            else:
                points = [(step + i, rng.random()) for i in range(size)]
                step += size
            await writer.write(rng.choice([one, two]), points)
            readers = [one, two] if round_ % 3 else [rng.choice([one, two])]  # caches fall behind by a few batches
            await assert_reads_agree(plain, readers, writer.experiment_id)
        await assert_reads_agree(plain, [one, two], writer.experiment_id)


def test_cache_size_comes_from_the_config(monkeypatch):
    """ML_DASH_SERIES_CACHE_MB → ServerConfig.series_cache_mb (default 256, 0: no cache) → SeriesCache.sized."""
    monkeypatch.delenv("ML_DASH_SERIES_CACHE_MB", raising=False)
    assert SeriesCache.sized(ServerConfig.resolve().series_cache_mb).max_bytes == 256 * 2**20
    monkeypatch.setenv("ML_DASH_SERIES_CACHE_MB", "0")
    assert SeriesCache.sized(ServerConfig.resolve().series_cache_mb) is None
    monkeypatch.setenv("ML_DASH_SERIES_CACHE_MB", "1.5")
    assert SeriesCache.sized(ServerConfig.resolve().series_cache_mb).max_bytes == int(1.5 * 2**20)
    monkeypatch.setenv("ML_DASH_SERIES_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="ML_DASH_SERIES_CACHE_MB.*megabytes"):
        ServerConfig.resolve()


def test_a_tail_that_differs_from_what_was_cached_is_copied_not_overwritten():
    """Defensive path: if a re-read tail does not repeat the cached points, earlier answers still keep theirs."""
    cache = SeriesCache(2**20)
    blob = lambda values, dtype="<f8": np.array(values, dtype).tobytes()  # noqa: E731
    first = cache.extend(("e", "m"), None, 0, [(1, blob([0, 1]), blob([5, 5]), blob([0, 0], "i1"), RAW)], 9, True)
    held = first.series(None, None)
    second = cache.extend(("e", "m"), first, 2, [(2, blob([0, 1, 2]), blob([6, 6, 6]), blob([0, 0, 0], "i1"), RAW)], 9,
                          True)
    assert held.values.tolist() == [5, 5] and second.series(None, None).values.tolist() == [6, 6, 6]
