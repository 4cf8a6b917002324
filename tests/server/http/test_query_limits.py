"""Heavy queries: filters priced by comparisons × experiments in scope, reads stopped at ``query_timeout`` (503),
a query whose client went away cancelled in the database, and SQLite ingest lookups on a reader of their own."""
from __future__ import annotations

import asyncio
import threading

import orjson
import pytest

from ml_dash.server.http import graphql
from ml_dash.server.http.keys import STORAGE_KEY
from ml_dash.server.storage.sql.protocol import ROW

from ..conftest import new_experiment
from .test_graphql import gql

# A statement that runs until it is stopped: SQLite counts forever, PostgreSQL sleeps (both interruptible).
SLOW = {"SQLiteStorage": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "PostgresStorage": "SELECT pg_sleep(120)"}
PAGE = "{ experimentPage(filter: %s) { total items { id } } }"


def _slow_page(storage, started: asyncio.Event | None = None):
    """``storage.experiment_page`` replaced by a read that never ends on its own."""
    sql = SLOW[type(storage).__name__]

    def body():
        yield ROW, sql, ()
        return 0, []

    async def experiment_page(*args, **kwargs):
        if started is not None:
            started.set()
        return await storage._read(body(), True)

    return experiment_page


async def test_a_filter_over_the_budget_is_refused(client, monkeypatch):
    """Before: experimentPage cost 1,000 whatever its filter (64 params.* comparisons over 12k experiments: 93 s)."""
    for prefix in ("a", "b"):
        await new_experiment(client, prefix)
    monkeypatch.setattr(graphql, "FILTER_TERM_COST", 10_000)  # 2 experiments stand for thousands
    heavy = orjson.dumps(" or ".join(f"params.p{i} > {i}" for i in range(64))).decode()
    answer = await gql(client, PAGE % heavy, status=400)
    message = answer["errors"][0]["message"]
    assert "over the budget" in message and "64 comparisons" in message and "2 experiments" in message, message
    light = orjson.dumps("params.p1 > 1").decode()
    assert (await gql(client, PAGE % light))["data"]["experimentPage"]["total"] == 0


async def test_a_query_past_the_timeout_is_stopped_and_the_server_goes_on(make_client, monkeypatch):
    """Before: no statement timeout (a page ran 66-93 s on PostgreSQL, holding a connection or a reader)."""
    client = await make_client(query_timeout=0.5)
    await new_experiment(client, "t")
    storage = client.server.app[STORAGE_KEY]
    monkeypatch.setattr(storage, "experiment_page", _slow_page(storage))
    async with asyncio.timeout(30):
        answer = await gql(client, "{ experimentPage { total } }", status=503)
    assert "ML_DASH_QUERY_TIMEOUT" in answer["errors"][0]["message"]
    assert (await gql(client, "{ namespaces }"))["data"]["namespaces"] == ["alice"]


async def test_a_query_whose_client_went_away_is_cancelled(make_client, monkeypatch):
    """Before: a dropped request's query ran on (4 of them made ``{ namespaces }`` time out at 120 s)."""
    client = await make_client(query_timeout=60)
    storage = client.server.app[STORAGE_KEY]
    started = asyncio.Event()
    monkeypatch.setattr(storage, "experiment_page", _slow_page(storage, started))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = orjson.dumps({"query": "{ experimentPage { total } }"})
    writer.write(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    async with asyncio.timeout(30):
        await started.wait()
        writer.close()
        while storage.cancelled_reads == 0:  # the statement is stopped once the server sees the connection gone
            await asyncio.sleep(0.05)
    async with asyncio.timeout(30):
        assert (await gql(client, "{ namespaces }"))["data"]["namespaces"] == []
        if type(storage).__name__ == "PostgresStorage":  # and PostgreSQL itself no longer runs the statement
            sql = "SELECT count(*) FROM pg_stat_activity WHERE query = ? AND state = 'active'"
            while (await storage._read(_row(sql, (SLOW["PostgresStorage"],))))[0]:
                await asyncio.sleep(0.05)


def _row(sql, args):
    return (yield ROW, sql, args)


async def test_sqlite_ingest_lookups_have_a_reader_heavy_reads_cannot_take(storage):
    """Before: heavy pages holding every reader made each ingest batch wait for its experiment lookup (6.5 s)."""
    if type(storage).__name__ != "SQLiteStorage":
        pytest.skip("PostgreSQL reads take pooled connections; SQLite's reader threads are what runs out")
    experiment_id, _ = await storage.create_experiment("alice", "vision", "", "x", None, None)
    gate = threading.Event()
    busy = [asyncio.ensure_future(storage.read(lambda conn: gate.wait(30))) for _ in range(8)]
    try:
        async with asyncio.timeout(10):
            assert (await storage.get_experiment(experiment_id))["id"] == experiment_id
            assert await storage.stream_offsets(experiment_id) == {}
    finally:
        gate.set()
        await asyncio.gather(*busy)
