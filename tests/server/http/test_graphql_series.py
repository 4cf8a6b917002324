"""Query.seriesBatch (one metric of many experiments in one request) and Experiment.readmeHtml."""
from __future__ import annotations

import math

import pytest
from graphql import parse

from ml_dash.server.http.graphql import schema
from ml_dash.server.http.graphql_cost import MAX_SERIES_BATCH, QueryTooExpensive, check_cost

from ..conftest import metric_batch, new_experiment, new_run, post_batch

BATCH = """query($ids: [ID!]!, $name: String!, $n: Int, $x: String) {
  seriesBatch(experimentIds: $ids, name: $name, maxPoints: $n, x: $x) { experimentId name count steps values min max times }
}"""


async def gql(client, query: str, variables=None, headers=None):
    answer = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    return answer.status, await answer.json()


async def seeded_runs(client, runs: int, points: int = 2000, namespace: str = "alice", headers=None) -> list[str]:
    ids = []
    for r in range(runs):
        experiment_id = await new_experiment(client, f"run-{r}", namespace=namespace, headers=headers)
        run_id = await new_run(client, experiment_id, headers=headers)
        spike = 100 + 37 * r  # a one-step spike at a different step in each run
        answer = await post_batch(client, experiment_id, metric_batch(
            0, 1, range(points), run_id=run_id, value=lambda s, r=r, spike=spike: 99.0 + r if s == spike
            else math.cos(s / 50) + r), headers=headers)
        assert answer.status == 200, await answer.text()
        ids.append(experiment_id)
    return ids


async def test_series_batch_answers_every_run_in_order_with_its_spike(client):
    """One request returns each run's min/max envelope, aligned with the ids, each keeping its own spike; unknown
    ids and runs without the metric are null."""
    ids = await seeded_runs(client, 5)
    no_metric = await new_experiment(client, "empty")
    asked = [ids[3], "0" * 32, *ids[:3], no_metric, ids[4]]
    status, body = await gql(client, BATCH, {"ids": asked, "name": "loss", "n": 50})
    assert status == 200, body
    answer = body["data"]["seriesBatch"]
    assert len(answer) == len(asked) and answer[1] is None and answer[5] is None
    for wanted, got in zip(asked, answer):
        if got is None:
            continue
        r = ids.index(wanted)
        assert got["experimentId"] == wanted and got["count"] == 2000 and len(got["values"]) <= 100
        assert max(got["values"]) == got["max"] == 99.0 + r and got["steps"][got["values"].index(99.0 + r)] == 100 + 37 * r
        assert got["times"] is None  # only x: "time" pays for timestamps


async def test_series_batch_time_axis_interpolates_timestamps(client):
    """x: "time" gives every kept point its wall-clock time (metric_batch logs step s at 1000 + s)."""
    ids = await seeded_runs(client, 2, points=500)
    status, body = await gql(client, BATCH, {"ids": ids, "name": "loss", "n": 20, "x": "time"})
    assert status == 200, body
    for got in body["data"]["seriesBatch"]:
        assert got["times"] == [pytest.approx(1000.0 + s) for s in got["steps"]]


async def test_series_batch_time_axis_gives_times_to_a_series_logged_without_steps(client):
    """A metric logged without step= (W&B's habit) still gets its points' wall-clock times with x: "time", from
    each point's log order, whole or min/max-bucketed, so a workspace chart can draw it on a time axis."""
    experiment_id = await new_experiment(client, "stepless")
    run_id = await new_run(client, experiment_id)
    events = [{"timestamp": 2000.0 + 10 * i, "metrics": {"loss": 5.0 - i / 100}} for i in range(300)]
    answer = await post_batch(client, experiment_id, {"run_id": run_id, "stream": "metrics", "stream_id": "c1:metrics",
                                                      "start": 0, "end": 1, "events": events})
    assert answer.status == 200, await answer.text()
    for n in (1000, 20):  # every point, then 20 buckets (up to 40 points)
        status, body = await gql(client, BATCH, {"ids": [experiment_id], "name": "loss", "n": n, "x": "time"})
        assert status == 200, body
        got = body["data"]["seriesBatch"][0]
        assert set(got["steps"]) == {None} and len(got["times"]) == len(got["values"]) <= min(300, 2 * n)
        # loss 5 - i/100 was logged at 2000 + 10 i: each value's time follows from the value itself.
        assert got["times"] == [pytest.approx(2000.0 + 10 * round((5.0 - v) * 100)) for v in got["values"]]


async def test_series_batch_step_range_is_the_same_for_every_run(client):
    """stepMin/stepMax (a zoomed compare chart) narrow every run's answer to that range, at full resolution there."""
    ids = await seeded_runs(client, 3, points=1000)
    query = """query($ids: [ID!]!) { seriesBatch(experimentIds: $ids, name: "loss", maxPoints: 500, stepMin: 100,
               stepMax: 199) { count steps } }"""
    status, body = await gql(client, query, {"ids": ids})
    assert status == 200, body
    for got in body["data"]["seriesBatch"]:
        assert got["count"] == 100 and got["steps"] == list(range(100, 200))


async def test_series_batch_refuses_bad_arguments_by_name(client):
    """A bad x, too many buckets or an empty id list is an error naming the argument."""
    [experiment_id] = await seeded_runs(client, 1, points=10)
    status, body = await gql(client, BATCH, {"ids": [experiment_id], "name": "loss", "x": "epoch"})
    assert "x must be one of step, time" in body["errors"][0]["message"]
    status, body = await gql(client, BATCH, {"ids": [], "name": "loss"})
    assert "experimentIds" in body["errors"][0]["message"]
    status, body = await gql(client, BATCH, {"ids": [experiment_id], "name": "loss", "n": 10**6})
    assert status == 400 and "maxPoints" in body["errors"][0]["message"]


def _cost(ids: int, max_points: int) -> int:
    query = "query($ids: [ID!]!) { seriesBatch(experimentIds: $ids, name: \"loss\", maxPoints: %d) { count steps values } }"
    return check_cost(schema, parse(query % max_points), None, {"ids": ["x"] * ids}).cost


def test_series_batch_cost_fits_a_thousand_runs_at_chart_resolution():
    """1,000 runs at 200 buckets are within the budget (compare's aliases stop near 65 runs); 1,000 at 1,000
    buckets and more than MAX_SERIES_BATCH ids are refused before anything runs."""
    assert _cost(MAX_SERIES_BATCH, 200) < 1_000_000
    assert _cost(10, 200) * 100 == pytest.approx(_cost(1000, 200), rel=0.01)  # the price grows with the ids
    with pytest.raises(QueryTooExpensive, match="budget"):
        _cost(MAX_SERIES_BATCH, 1000)
    with pytest.raises(QueryTooExpensive, match="at most 1,000"):
        _cost(MAX_SERIES_BATCH + 1, 10)


async def test_series_batch_respects_namespace_tokens(make_client):
    """A token limited to 'alice' gets 403 when one of the ids is in 'bob'; its own runs answer."""
    client = await make_client(tokens={"admin": None, "alice": frozenset({"alice"})})
    admin, alice = {"Authorization": "Bearer admin"}, {"Authorization": "Bearer alice"}
    [bob_id] = await seeded_runs(client, 1, points=10, namespace="bob", headers=admin)
    [alice_id] = await seeded_runs(client, 1, points=10, namespace="alice", headers=admin)
    status, body = await gql(client, BATCH, {"ids": [alice_id, bob_id], "name": "loss"}, headers=alice)
    assert status == 403 and "bob" in body["errors"][0]["message"]
    status, body = await gql(client, BATCH, {"ids": [alice_id], "name": "loss"}, headers=alice)
    assert status == 200 and body["data"]["seriesBatch"][0]["count"] == 10


async def test_readme_html_renders_markdown_without_markup_from_the_readme(client):
    """readmeHtml is CommonMark: a heading directly followed by a line is a heading and a paragraph; raw HTML and
    javascript: links come back as text."""
    answer = await client.post("/api/v1/experiments", json={
        "namespace": "alice", "workspace": "w", "prefix": "md",
        "readme": "# Title\nnext line\n\n<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n[a](javascript:alert(1))"})
    experiment_id = (await answer.json())["experiment_id"]
    status, body = await gql(client, "query($id: ID!) { experiment(id: $id) { readmeHtml } }", {"id": experiment_id})
    html = body["data"]["experiment"]["readmeHtml"]
    assert html.startswith("<h1>Title</h1>\n<p>next line</p>")
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
