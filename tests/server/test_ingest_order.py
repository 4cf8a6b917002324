"""Batches sent ahead wait for their predecessor; large bodies are decoded in the pool exactly as inline."""
from __future__ import annotations

import asyncio

import msgpack
import orjson
import pytest

from ml_dash.server.http import batch_order
from ml_dash.server.http.batch_order import BatchOrder
from ml_dash.server.http.keys import DECODER_KEY, ORDER_KEY, STORAGE_KEY
from ml_dash.server.ingest_pool import OFF_LOOP_BYTES, DecodePool, decode_batch
from ml_dash.server.series.batch import MetricBatch

from .conftest import metric_batch, new_experiment, post_batch

LIMITS = (256, 100_000, 2_000_000, 4 << 20)


async def streams(client, experiment_id: str) -> dict:
    return await (await client.get(f"/api/v1/experiments/{experiment_id}/streams")).json()


async def test_a_batch_sent_ahead_waits_for_the_one_before_it(client):
    """The second batch arrives first (marked ahead): it is held, then stored once the first is; both 200."""
    experiment_id = await new_experiment(client)
    assert (await streams(client, experiment_id))["ordered"] is True
    second = asyncio.ensure_future(post_batch(client, experiment_id, {**metric_batch(10, 20, range(10, 20)),
                                                                      "ahead": True}))
    # The held batch retries its apply after each store of its stream: let it fail once before the first arrives.
    while not client.app[ORDER_KEY]._waiting:
        await asyncio.sleep(0)
    first = await post_batch(client, experiment_id, metric_batch(0, 10, range(10)))
    assert first.status == 200 and (await first.json())["acked"] == 10
    second = await second
    assert second.status == 200, await second.text()
    assert await second.json() == {"acked": 20, "stored": 10}
    assert (await streams(client, experiment_id))["streams"] == {"c1:metrics": 20}
    answer = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).json()
    assert answer["steps"] == list(range(20))


async def test_a_gap_not_marked_ahead_is_409_at_once(make_client):
    """Without "ahead" a batch past the acknowledged offset is a conflict at once, as before (no wait)."""
    client = await make_client(order_wait=600.0)
    experiment_id = await new_experiment(client)
    answer = await asyncio.wait_for(post_batch(client, experiment_id, metric_batch(10, 20, range(10, 20))), 60)
    assert answer.status == 409 and (await answer.json())["acked"] == 0


async def test_an_ahead_batch_whose_predecessor_never_comes_is_409_after_the_wait(make_client):
    """The wait is bounded by order_wait: then the 409 names the offset to resume from, and nothing was stored."""
    client = await make_client(order_wait=0.2)
    experiment_id = await new_experiment(client)
    await post_batch(client, experiment_id, metric_batch(0, 5, range(5)))
    answer = await post_batch(client, experiment_id, {**metric_batch(10, 20, range(10, 20)), "ahead": True})
    assert answer.status == 409 and (await answer.json())["acked"] == 5
    assert (await streams(client, experiment_id))["streams"] == {"c1:metrics": 5}


async def test_a_replayed_ahead_batch_is_a_duplicate_not_a_wait(make_client):
    """An ahead batch the server already has (a retry after a lost answer) is answered duplicate at once."""
    client = await make_client(order_wait=600.0)
    experiment_id = await new_experiment(client)
    for start in (0, 10):
        await post_batch(client, experiment_id, metric_batch(start, start + 10, range(start, start + 10)))
    again = await asyncio.wait_for(post_batch(client, experiment_id, {**metric_batch(10, 20, range(10, 20)),
                                                                      "ahead": True}), 60)
    assert again.status == 200 and await again.json() == {"acked": 20, "stored": 0, "duplicate": True}


async def test_a_batch_ahead_on_one_host_wakes_when_another_host_stores_its_predecessor(make_client, db_url,
                                                                                      monkeypatch):
    """Two server processes on one PostgreSQL database (hosts behind a load balancer): the batch sent ahead waits on
    host B, its predecessor is stored through host A, and B stores it at once: A's commit is announced to B
    (LISTEN/NOTIFY), B does not wait for a poll. Polling is pushed out to an hour so only the notice can wake it."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite is one machine's database: other processes' stores are found by polling")
    monkeypatch.setattr(batch_order, "POLL_S", 3600.0)
    monkeypatch.setattr(batch_order, "NOTICE_POLL_S", 3600.0)
    host_a, host_b = await make_client(order_wait=3600.0), await make_client(order_wait=3600.0)
    assert host_b.app[ORDER_KEY].noticed
    experiment_id = await new_experiment(host_a)
    second = asyncio.ensure_future(post_batch(host_b, experiment_id, {**metric_batch(10, 20, range(10, 20)),
                                                                      "ahead": True}))
    while not host_b.app[ORDER_KEY]._waiting:  # B tried once, found the gap, and now waits
        await asyncio.sleep(0)
    first = await post_batch(host_a, experiment_id, metric_batch(0, 10, range(10)))
    assert first.status == 200
    second = await asyncio.wait_for(second, 30)  # a poll would take an hour
    assert second.status == 200 and await second.json() == {"acked": 20, "stored": 10}
    assert host_b.app[ORDER_KEY].retries == 1
    answer = await (await host_a.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).json()
    assert answer["steps"] == list(range(20))


async def test_the_notices_come_back_after_the_listening_connection_is_lost(make_client, db_url, monkeypatch):
    """PostgreSQL restarts, a proxy drops idle connections: the listening connection is lost. The process falls back
    to polling (``noticed`` false), connects again and hears other processes' stores as before."""
    if not db_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL announces stores")
    from ml_dash.server.storage.postgres import storage as postgres_storage

    changes, notices = asyncio.Queue(), asyncio.Queue()
    monkeypatch.setattr(postgres_storage, "RECONNECT_S", 0.01)
    monkeypatch.setattr(BatchOrder, "live", lambda self, noticed: (setattr(self, "noticed", noticed),
                                                                   changes.put_nowait(noticed)))
    monkeypatch.setattr(BatchOrder, "stored", lambda self, *key: notices.put_nowait(key))
    host = await make_client()
    storage = host.app[STORAGE_KEY]
    assert await changes.get() is True
    first = storage.listener_pid
    async with storage._pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", first)
        assert await asyncio.wait_for(changes.get(), 30) is False
        assert await asyncio.wait_for(changes.get(), 30) is True and storage.listener_pid != first
        await conn.execute("SELECT pg_notify('ml_dash_batch', 'not json')")  # someone else's: ignored
        await conn.execute("""SELECT pg_notify('ml_dash_batch', '["e1", "c1:metrics"]')""")
    assert await asyncio.wait_for(notices.get(), 30) == ("e1", "c1:metrics")


def jsonl_body(n: int, start: int = 0, **extra) -> bytes:
    lines = b"".join(orjson.dumps({"timestamp": 1.7e9 + i, "step": i, "metrics": {"loss": 1.0 / (i + 1), "ok": i % 2 == 0,
                                                                                  "acc": i * 1e-6}}) + b"\n"
                     for i in range(start, start + n))
    body = {"run_id": None, "stream": "metrics", "stream_id": "c:metrics", "start": 0, "end": len(lines),
            "lines": lines, **extra}
    return msgpack.packb(body, use_bin_type=True)


async def test_the_pool_decodes_a_large_body_as_the_inline_path_does():
    """A body over OFF_LOOP_BYTES goes to a pool process once it is up; the batch equals the inline decode."""
    raw = jsonl_body(20_000)
    assert len(raw) > OFF_LOOP_BYTES
    pool = DecodePool(1)
    try:
        await pool.started()
        pooled = await pool.decode(raw, "application/msgpack", LIMITS)
        assert pool.decoded_in_processes == 1
    finally:
        pool.close()
    inline = decode_batch(raw, "application/msgpack", LIMITS)
    assert isinstance(pooled["events"], MetricBatch) and pooled == inline
    assert pooled["events"].count == 20_000 and set(pooled["events"].names) == {"loss", "ok", "acc"}


async def test_a_refusal_in_the_pool_reaches_the_client_as_its_4xx(make_client):
    """A malformed large body is a 400 naming the problem, decoded in the pool like any other."""
    client = await make_client(ingest_processes=1)
    await client.app[DECODER_KEY].started()
    experiment_id = await new_experiment(client)
    bad = jsonl_body(20_000, stream="nope")
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=bad,
                               headers={"Content-Type": "application/msgpack"})
    assert answer.status == 400 and "stream" in (await answer.json())["error"]
    good = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=jsonl_body(20_000),
                             headers={"Content-Type": "application/msgpack"})
    assert good.status == 200 and (await good.json())["stored"] == 20_000
    assert client.app[DECODER_KEY].decoded_in_processes == 1


@pytest.mark.parametrize("processes", [0])
async def test_threads_only_decode_large_bodies_too(make_client, processes):
    """ingest_processes=0: no process is started; a large body is decoded in a thread and stored."""
    client = await make_client(ingest_processes=processes)
    experiment_id = await new_experiment(client)
    good = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=jsonl_body(20_000),
                             headers={"Content-Type": "application/msgpack"})
    assert good.status == 200 and (await good.json())["stored"] == 20_000
    assert client.app[DECODER_KEY].decoded_in_processes == 0


async def test_a_dead_pool_process_costs_no_batch():
    """A decoding process killed under the server: the body it would have decoded is decoded in a thread, and the
    next large body starts a fresh pool."""
    import os
    import signal

    raw = jsonl_body(20_000)
    pool = DecodePool(1)
    try:
        await pool.started()
        os.kill(pool._warmups[0].result(), signal.SIGKILL)
        first = await pool.decode(raw, "application/msgpack", LIMITS)
        assert first == decode_batch(raw, "application/msgpack", LIMITS) and pool.decoded_in_processes == 0
        await pool.started()
        assert await pool.decode(raw, "application/msgpack", LIMITS) == first and pool.decoded_in_processes == 1
    finally:
        pool.close()
