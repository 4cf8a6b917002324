"""GraphQL's cost budget and caps (docs/server.md, "Limits"): abusive queries get a clear 400 before they run, and
the heavy ones that are allowed run off the event loop, so /health stays responsive meanwhile."""
from __future__ import annotations

import asyncio
import time

from graphql import get_introspection_query

from ml_dash.server.http.graphql_cost import (
    DEFAULT_LOGS_LIMIT, DEFAULT_MAX_POINTS, MAX_COST, MAX_DEPTH, MAX_LOGS_LIMIT, MAX_POINTS, MAX_QUERY_CHARS,
)

from ..conftest import metric_batch, new_experiment, new_run, post_batch


async def gql(client, query: str, variables=None):
    answer = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    return answer.status, await answer.json()


def error_text(body) -> str:
    return " ".join(e["message"] for e in body.get("errors") or [])


async def seed_points(client, points: int, name: str = "x") -> str:
    experiment_id = await new_experiment(client, "big")
    run_id = await new_run(client, experiment_id)
    chunk = 100_000
    for i, first in enumerate(range(0, points, chunk)):
        answer = await post_batch(client, experiment_id, metric_batch(
            i, i + 1, range(first, min(points, first + chunk)), run_id=run_id, name=name, value=float))
        assert answer.status == 200, await answer.text()
    return experiment_id


async def test_many_aliases_are_refused_before_running(client):
    """100,000 aliases of __typename (10 s on the loop before): refused at once, by size, with the limit named."""
    started = time.monotonic()
    status, body = await gql(client, "{" + " ".join(f"a{i}: __typename" for i in range(100_000)) + "}")
    assert status == 400 and f"{MAX_QUERY_CHARS:,}" in error_text(body) and body["data"] is None
    assert time.monotonic() - started < 2
    # Under the size limit but over the token limit.
    status, body = await gql(client, "{" + "a " * 12_000 + "}")
    assert status == 400 and "token" in error_text(body).lower()


async def test_cost_counts_aliases_and_list_sizes(client):
    experiment_id = await new_experiment(client)
    many_metrics = " ".join(f'm{i}: metric(name: "x", stepMin: {i}) {{ count }}' for i in range(100))
    status, body = await gql(client, f'{{ experiment(id: "{experiment_id}") {{ {many_metrics} }} }}')
    assert status == 400 and "budget" in error_text(body) and f"{MAX_COST:,}" in error_text(body)
    many_logs = " ".join(f"l{i}: logs(limit: {MAX_LOGS_LIMIT}) {{ timestamp level message context }}"
                         for i in range(30))
    status, body = await gql(client, f'{{ experiment(id: "{experiment_id}") {{ {many_logs} }} }}')
    assert status == 400 and "budget" in error_text(body)
    # Limits given as variables count too.
    query = "query($n: Int) { experiments(limit: $n) { logs(limit: $n) { message } } }"
    status, body = await gql(client, query, {"n": 10_000})
    assert status == 400 and "budget" in error_text(body)
    status, body = await gql(client, query, {"n": 5})
    assert status == 200, body


async def test_fragment_bomb_and_depth_are_refused(client):
    # Each fragment spreads the previous one twice (through an inline fragment): 2^30 fields once expanded.
    fragments = ["fragment f0 on Experiment { id prefix }"] + [
        f"fragment f{i} on Experiment {{ ...f{i - 1} ... on Experiment {{ ...f{i - 1} }} }}" for i in range(1, 30)]
    started = time.monotonic()
    status, body = await gql(client, "{ experiments { ...f29 } } " + " ".join(fragments))
    assert status == 400 and "budget" in error_text(body)
    assert time.monotonic() - started < 2
    deep = "{ __schema { types { " + "ofType { " * MAX_DEPTH + "name" + " }" * MAX_DEPTH + " } } }"
    status, body = await gql(client, deep)
    assert status == 400 and "deep" in error_text(body)


async def test_introspection_and_the_dashboard_queries_fit(client):
    status, body = await gql(client, get_introspection_query())
    assert status == 200 and body["data"]["__schema"]["queryType"]["name"] == "Query"
    status, body = await gql(client, """{ experiments(limit: 10000) { id directory prefix readme status hostname
                                         startedAt completedAt params lastMetrics } }""")
    assert status == 200, body


async def test_max_points_and_logs_limit_have_defaults_and_caps(client):
    experiment_id = await seed_points(client, 3 * DEFAULT_MAX_POINTS)
    run_id = await new_run(client, experiment_id, "run-2")
    logs = {"stream": "logs", "stream_id": "l", "start": 0, "end": 1, "run_id": run_id,
            "events": [{"timestamp": 1.0 + i, "level": "INFO", "message": f"m{i}"} for i in range(1500)]}
    assert (await post_batch(client, experiment_id, logs)).status == 200
    query = 'query($id: ID!) { experiment(id: $id) { metric(name: "x") { count steps } logs { message } } }'
    status, body = await gql(client, query, {"id": experiment_id})
    assert status == 200, body
    experiment = body["data"]["experiment"]
    assert experiment["metric"]["count"] == 3 * DEFAULT_MAX_POINTS
    assert len(experiment["metric"]["steps"]) <= 2 * DEFAULT_MAX_POINTS
    assert len(experiment["logs"]) == DEFAULT_LOGS_LIMIT
    for field in (f'metric(name: "x", maxPoints: {MAX_POINTS + 1}) {{ count }}', f"logs(limit: {MAX_LOGS_LIMIT + 1}) "
                  "{ message }"):
        status, body = await gql(client, f'{{ experiment(id: "{experiment_id}") {{ {field} }} }}')
        assert status == 400 and "at most" in error_text(body), body


async def test_health_and_ingest_answer_while_a_heavy_query_runs(make_client):
    """A query near the edge of the budget (60 full reads of a big series, a 2·50,000-point answer): before, it ran on
    the event loop and /health waited seconds behind it, and its reads queued ahead of ingest's in the storage's
    reader pool; now both answer within 0.5 s throughout (or a quarter of the query's time, on a loaded machine)."""
    client = await make_client()
    experiment_id = await seed_points(client, 300_000)
    other_id = await new_experiment(client, "other")
    reads = " ".join(f'r{i}: metric(name: "x", stepMin: {i}) {{ count }}' for i in range(60))
    big = f'b: metric(name: "x", maxPoints: {MAX_POINTS}) {{ steps values }}'
    query = f'{{ experiment(id: "{experiment_id}") {{ {reads} {big} }} }}'
    heavy_started = time.monotonic()
    heavy = asyncio.ensure_future(client.post("/graphql", json={"query": query}))
    health, ingest = [], []
    for i in range(200):  # bounded: the query ends long before
        if heavy.done():
            break
        started = time.monotonic()
        assert (await client.get("/health")).status == 200
        health.append(time.monotonic() - started)
        started = time.monotonic()
        answer = await post_batch(client, other_id, metric_batch(0, 1, range(100), stream_id=f"probe-{i}"))
        assert answer.status == 200, await answer.text()
        ingest.append(time.monotonic() - started)
    answer = await heavy
    heavy_s = time.monotonic() - heavy_started
    assert answer.status == 200, await answer.text()
    data = (await answer.json())["data"]["experiment"]
    assert data["r0"]["count"] == 300_000 and len(data["b"]["values"]) <= 2 * MAX_POINTS
    # Blocked behind the query, one probe would take about its whole time: the bound scales with it on a busy machine.
    bound = max(0.5, heavy_s / 4)
    assert len(health) >= 2 and max(health) <= bound, f"/health waited {max(health):.2f} s ({len(health)} probes, query {heavy_s:.2f} s)"
    assert max(ingest) <= bound, f"ingest waited {max(ingest):.2f} s ({len(ingest)} probes, query {heavy_s:.2f} s)"
