"""The run environment: PUT/GET /api/v1/experiments/{id}/environment and GraphQL ``Experiment.environment``."""
from __future__ import annotations

import msgpack

from ml_dash.format.limits import MAX_NESTING

from ..conftest import MSGPACK, new_experiment
from .test_graphql import gql

ENVIRONMENT = {"captured_at": 1.5, "command": ["train.py", "--lr", "0.1"], "git": {"commit": "abc", "dirty": True},
               "python": {"version": "3.11.7"}, "packages": {"numpy": "2.0.0", "torch": "2.13.0"}}


async def test_put_replaces_and_graphql_reads_it(client):
    """The environment sent is what GET and GraphQL return; a second PUT replaces it (a retry changes nothing)."""
    experiment_id = await new_experiment(client)
    url = f"/api/v1/experiments/{experiment_id}/environment"
    assert (await (await client.get(url)).json()) == {"environment": None}
    query = "query($id: ID!) { experiment(id: $id) { environment } }"
    assert (await gql(client, query, {"id": experiment_id}))["data"]["experiment"]["environment"] is None
    for _ in range(2):
        answer = await client.put(url, data=msgpack.packb(ENVIRONMENT), headers=MSGPACK)
        assert answer.status == 200, await answer.text()
    assert (await (await client.get(url)).json()) == {"environment": ENVIRONMENT}
    second = dict(ENVIRONMENT, captured_at=2.5, git={"commit": "def", "dirty": False})
    await client.put(url, data=msgpack.packb(second), headers=MSGPACK)
    found = (await gql(client, query, {"id": experiment_id}))["data"]["experiment"]["environment"]
    assert found == second and list(found) == list(second)  # key order kept


async def test_bad_environments_are_refused_with_a_clear_error(client):
    """Not an object, nested too deep, an unknown experiment, another namespace's token: 4xx naming the problem."""
    experiment_id = await new_experiment(client)
    url = f"/api/v1/experiments/{experiment_id}/environment"
    answer = await client.put(url, data=msgpack.packb([1, 2]), headers=MSGPACK)
    assert answer.status == 400 and "must be an object" in (await answer.json())["error"]
    deep: dict = {}
    node = deep
    for _ in range(MAX_NESTING + 5):
        node["x"] = {}
        node = node["x"]
    answer = await client.put(url, data=msgpack.packb(deep), headers=MSGPACK)
    assert answer.status == 400 and "environment: value is nested deeper" in (await answer.json())["error"]
    answer = await client.put("/api/v1/experiments/nope/environment", data=msgpack.packb({}), headers=MSGPACK)
    assert answer.status == 404


async def test_environment_needs_the_namespace_token(make_client):
    """With tokens on, a token for another namespace can neither write nor read an experiment's environment."""
    client = await make_client(tokens={"t-alice": ["alice"], "t-bob": ["bob"]})
    alice, bob = {"Authorization": "Bearer t-alice"}, {"Authorization": "Bearer t-bob"}
    experiment_id = await new_experiment(client, headers=alice)
    url = f"/api/v1/experiments/{experiment_id}/environment"
    answer = await client.put(url, data=msgpack.packb({"a": 1}), headers={**MSGPACK, **bob})
    assert answer.status == 403
    assert (await client.get(url, headers=bob)).status == 403
    answer = await client.put(url, data=msgpack.packb({"a": 1}), headers={**MSGPACK, **alice})
    assert answer.status == 200
