"""Hostile or odd input found by review: each case must answer 4xx (or store cleanly), never 500 or a duplicate."""
from __future__ import annotations

import asyncio

import pytest

from ..conftest import metric_batch, new_experiment, new_run, post_batch

BIG = 2**64 - 1  # msgpack's largest integer: beyond SQL's signed 64-bit


def nested(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("where", ["log timestamp", "metric timestamp", "run started_at", "run ended_at"])
async def test_times_beyond_int64_are_stored_not_500(client, where):
    """A time given as an integer beyond 64 bits (msgpack allows up to 2**64-1) is stored as a float, not a 500."""
    experiment_id = await new_experiment(client)
    if where == "run started_at":
        answer = await client.post(f"/api/v1/experiments/{experiment_id}/runs",
                                   json={"client_run_id": "r", "started_at": BIG})
    elif where == "run ended_at":
        run_id = await new_run(client, experiment_id)
        answer = await client.patch(f"/api/v1/runs/{run_id}", json={"status": "COMPLETED", "ended_at": BIG})
    else:
        stream = where.split()[0] + "s"
        event = ({"timestamp": BIG, "level": "INFO", "message": "m"} if stream == "logs"
                 else {"timestamp": BIG, "step": 1, "metrics": {"loss": 1.0}})
        answer = await post_batch(client, experiment_id, {"run_id": None, "stream": stream, "stream_id": "c:" + stream,
                                                          "start": 0, "end": 10, "events": [event]})
    assert answer.status == 200, await answer.text()


@pytest.mark.parametrize("stream", ["parameters", "logs"])
async def test_deeply_nested_values_are_400(client, stream):
    """Parameters or a log context nested deeper than JSON storage allows are a 400, not a 500."""
    experiment_id = await new_experiment(client)
    event = ({"timestamp": 1.0, "operation": "set", "data": nested(300)} if stream == "parameters"
             else {"timestamp": 1.0, "level": "INFO", "message": "m", "context": nested(300)})
    answer = await post_batch(client, experiment_id, {"run_id": None, "stream": stream, "stream_id": "c:" + stream,
                                                      "start": 0, "end": 10, "events": [event]})
    assert answer.status == 400, await answer.text()
    streams = await (await client.get(f"/api/v1/experiments/{experiment_id}/streams")).json()
    assert streams == {"streams": {}, "ordered": True}


async def test_nesting_within_the_limit_round_trips(client):
    """Moderately nested parameters are still stored and read back whole."""
    experiment_id = await new_experiment(client)
    batch = {"run_id": None, "stream": "parameters", "stream_id": "c:p", "start": 0, "end": 10,
             "events": [{"timestamp": 1.0, "operation": "set", "data": nested(100)}]}
    assert (await post_batch(client, experiment_id, batch)).status == 200
    assert await (await client.get(f"/api/v1/experiments/{experiment_id}/parameters")).json() == nested(100)


async def test_batch_with_events_but_empty_byte_range_is_400(client):
    """Events with start == end would be stored again on every replay (start stays == acked): refused."""
    experiment_id = await new_experiment(client)
    batch = metric_batch(0, 0, range(3))
    for _ in range(2):
        answer = await post_batch(client, experiment_id, batch)
        assert answer.status == 400, await answer.text()
    assert (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).status == 404
    empty = await post_batch(client, experiment_id, metric_batch(0, 0, range(0)))
    assert empty.status == 200 and await empty.json() == {"acked": 0, "stored": 0}


async def test_non_utf8_authorization_header_is_401(make_client):
    """A bearer token that is not valid UTF-8 is an unknown token (401), not a 500."""
    client = await make_client(tokens={"secret": None})
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\n"
                 b"Connection: close\r\n\r\n")
    await writer.drain()
    status_line = (await reader.readline()).decode()
    writer.close()
    assert status_line.split()[1] == "401", status_line


async def test_graphql_logs_negative_limit_is_an_error(client):
    """GraphQL logs(limit) takes 1 or more as REST does, on every backend (SQLite would read LIMIT -1 as 'all')."""
    experiment_id = await new_experiment(client)
    query = "query($id: ID!) { experiment(id: $id) { logs(limit: -1) { message } } }"
    answer = await client.post("/graphql", json={"query": query, "variables": {"id": experiment_id}})
    body = await answer.json()
    assert body.get("errors") and "limit" in body["errors"][0]["message"]
