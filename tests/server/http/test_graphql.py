"""GraphQL queries at /graphql."""
from __future__ import annotations

import math

from ..conftest import metric_batch, new_experiment, new_run, post_batch

EXPERIMENT_FIELDS = """id namespace workspace directory prefix readme status hostname startedAt completedAt params
metricNames lastMetrics runs { id status startedAt endedAt error }"""


async def gql(client, query: str, variables=None, headers=None, status=200):
    answer = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    assert answer.status == status, await answer.text()
    return await answer.json()


async def seeded(client) -> tuple[str, str]:
    experiment_id = await new_experiment(client, "resnet")
    run_id = await new_run(client, experiment_id)
    await post_batch(client, experiment_id, metric_batch(0, 10, range(5000), run_id=run_id,
                                                         value=lambda s: 50.0 if s == 3777 else math.sin(s / 100)))
    params = {"stream": "parameters", "stream_id": "p", "start": 0, "end": 1, "run_id": run_id,
              "events": [{"timestamp": 1.0, "operation": "set", "data": {"lr": 0.1}}]}
    logs = {"stream": "logs", "stream_id": "l", "start": 0, "end": 1, "run_id": run_id,
            "events": [{"timestamp": 1.0, "level": "ERROR", "message": "oops", "context": {"gpu": 0}}]}
    await post_batch(client, experiment_id, params)
    await post_batch(client, experiment_id, logs)
    await client.put(f"/api/v1/experiments/{experiment_id}/files/ckpt/model.pt", data=b"weights")
    return experiment_id, run_id


async def test_experiments_query_lists_fields(client):
    """experiments(...) returns every listed field, params as JSON and lastMetrics."""
    experiment_id, run_id = await seeded(client)
    data = (await gql(client, f"{{ experiments(namespace: \"alice\") {{ {EXPERIMENT_FIELDS} }} }}"))["data"]
    [experiment] = data["experiments"]
    assert experiment["id"] == experiment_id and experiment["status"] == "RUNNING"
    assert experiment["params"] == {"lr": 0.1} and experiment["metricNames"] == ["loss"]
    assert experiment["lastMetrics"] == {"loss": math.sin(4999 / 100)}
    assert experiment["runs"][0]["id"] == run_id and experiment["startedAt"] is not None


async def test_metric_downsampling_keeps_spike(client):
    """metric(maxPoints) returns ≤ 2·maxPoints points and still contains the single spike."""
    experiment_id, _ = await seeded(client)
    query = """query($id: ID!) { experiment(id: $id) { metric(name: "loss", maxPoints: 50) {
               name count steps values min max } } }"""
    metric = (await gql(client, query, {"id": experiment_id}))["data"]["experiment"]["metric"]
    assert metric["count"] == 5000 and len(metric["values"]) <= 100
    assert 50.0 in metric["values"] and 3777 in metric["steps"] and metric["max"] == 50.0
    full = "query($id: ID!) { experiment(id: $id) { metric(name: \"loss\", stepMin: 10, stepMax: 19) { steps } } }"
    steps = (await gql(client, full, {"id": experiment_id}))["data"]["experiment"]["metric"]["steps"]
    assert steps == list(range(10, 20))


async def test_nonfinite_metric_values_are_null(client):
    """GraphQL Float cannot carry NaN/Infinity, so they come back null while lastMetrics spells them."""
    experiment_id = await new_experiment(client)
    await post_batch(client, experiment_id, metric_batch(0, 1, range(3), value=lambda s: [1.0, math.nan, math.inf][s]))
    query = "query($id: ID!) { experiment(id: $id) { lastMetrics metric(name: \"loss\") { values } } }"
    experiment = (await gql(client, query, {"id": experiment_id}))["data"]["experiment"]
    assert experiment["metric"]["values"] == [1.0, None, None] and experiment["lastMetrics"] == {"loss": "Infinity"}


async def test_logs_files_namespaces_workspaces(client):
    """logs(level, limit), files, namespaces and workspaces(namespace) answer."""
    experiment_id, _ = await seeded(client)
    await new_experiment(client, namespace="bob")
    query = """query($id: ID!) { namespaces workspaces(namespace: "alice")
               experiment(id: $id) { logs(level: "error", limit: 5) { timestamp level message context }
               files { path size } } }"""
    data = (await gql(client, query, {"id": experiment_id}))["data"]
    assert data["namespaces"] == ["alice", "bob"] and data["workspaces"] == ["vision"]
    assert data["experiment"]["logs"] == [{"timestamp": 1.0, "level": "ERROR", "message": "oops", "context": {"gpu": 0}}]
    assert data["experiment"]["files"] == [{"path": "ckpt/model.pt", "size": 7}]


async def test_status_filter_and_unknown_experiment(client):
    """Status filters on the latest run; an unknown id is null; invalid queries are 400; GET describes the endpoint."""
    experiment_id, run_id = await seeded(client)
    await client.patch(f"/api/v1/runs/{run_id}", json={"status": "COMPLETED"})
    done = (await gql(client, "{ experiments(status: \"COMPLETED\") { id completedAt } }"))["data"]["experiments"]
    assert [e["id"] for e in done] == [experiment_id] and done[0]["completedAt"] is not None
    assert (await gql(client, "{ experiments(status: \"RUNNING\") { id } }"))["data"]["experiments"] == []
    assert (await gql(client, "{ experiment(id: \"nope\") { id } }"))["data"]["experiment"] is None
    assert "errors" in await gql(client, "{ experiments { nosuchfield } }", status=400)
    assert (await client.post("/graphql", data=b"{oops", headers={"Content-Type": "application/json"})).status == 400
    assert (await client.get("/graphql")).status == 200
