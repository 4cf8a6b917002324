"""Readmes and environments are bounded at ingest (client and server, one constant each in ``format.limits``), and
GraphQL prices text by its size; a readme is rendered once per content (the cache), wherever it is asked for."""
from __future__ import annotations

import logging
import uuid

import msgpack
import pytest

from ml_dash.client.upload import environment as client_environment
from ml_dash.format.limits import MAX_ENVIRONMENT_BYTES, MAX_README_CHARS
from ml_dash.server.http import readme_html
from ml_dash.server.http.graphql_cost import MAX_COST

from ..conftest import MSGPACK
from .test_graphql import gql


async def test_readme_over_the_limit_is_refused_naming_it(client):
    body = {"namespace": "alice", "workspace": "vision", "prefix": "big", "readme": "x" * (MAX_README_CHARS + 1)}
    answer = await client.post("/api/v1/experiments", json=body)
    assert answer.status == 400
    assert "readme" in (error := (await answer.json())["error"]) and f"{MAX_README_CHARS:,}" in error
    body["readme"] = "x" * MAX_README_CHARS  # the limit itself is accepted
    assert (await client.post("/api/v1/experiments", json=body)).status == 200


def test_client_refuses_a_long_readme_at_the_call(make_exp):
    with pytest.raises(ValueError, match=r"readme is 100,001 characters; at most 100,000"):
        make_exp(readme="x" * (MAX_README_CHARS + 1))
    with pytest.raises(TypeError, match="readme must be a str"):
        make_exp(readme=b"bytes")


async def test_environment_over_the_limit_is_refused_naming_it(client):
    answer = await client.post("/api/v1/experiments", json={"namespace": "alice", "workspace": "vision",
                                                            "prefix": "env"})
    url = f"/api/v1/experiments/{(await answer.json())['experiment_id']}/environment"
    big = {"captured_at": 1.0, "packages": {f"pkg{i}": "1.0" * 20 for i in range(MAX_ENVIRONMENT_BYTES // 60)}}
    answer = await client.put(url, data=msgpack.packb(big), headers=MSGPACK)
    assert answer.status == 400
    assert "environment is" in (error := (await answer.json())["error"]) and f"{MAX_ENVIRONMENT_BYTES:,}" in error
    assert (await (await client.get(url)).json()) == {"environment": None}


async def test_client_does_not_send_an_environment_over_the_limit(caplog):
    class State:
        experiment_id, directory, environment_sent = "e1", "d", None

        def save(self):
            self.saved = True

    class Api:
        calls = 0

        async def call(self, *args):
            Api.calls += 1

    class Sync:
        state, api = State(), Api()
        environment = {"captured_at": 2.0, "blob": "x" * MAX_ENVIRONMENT_BYTES}

    with caplog.at_level(logging.WARNING, "ml_dash"):
        await client_environment.push_environment(Sync())
    assert Api.calls == 0 and Sync.state.environment_sent == 2.0  # not sent, and not tried again
    assert f"over the server's limit of {MAX_ENVIRONMENT_BYTES:,}" in caplog.text


async def _with_readme(client, readme: str) -> str:
    body = {"namespace": "alice", "workspace": "vision", "prefix": "r", "readme": readme}
    return (await (await client.post("/api/v1/experiments", json=body)).json())["experiment_id"]


async def test_readme_html_is_rendered_once_per_content(client):
    """Ten aliases and a second query of the same readme: one rendering (the experiment page polls it)."""
    experiment_id = await _with_readme(client, "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 500 + uuid.uuid4().hex)
    query = "query($id: ID!) { experiment(id: $id) { %s } }" % " ".join(f"h{i}: readmeHtml" for i in range(10))
    before = readme_html.renders
    for _ in range(2):
        found = (await gql(client, query, {"id": experiment_id}))["data"]["experiment"]
        assert len(set(found.values())) == 1 and "<table>" in found["h0"]
    assert readme_html.renders - before == 1


async def test_text_is_priced_by_its_size(client):
    """readmeHtml costs 1 per readme character: 11 renderings of the largest readme are over the budget (400), 9
    are not; plain ``readme`` is 100 times cheaper."""
    experiment_id = await _with_readme(client, "y" * MAX_README_CHARS)
    over = MAX_COST // MAX_README_CHARS + 1
    query = "query($id: ID!) { experiment(id: $id) { %s } }"
    answer = await gql(client, query % " ".join(f"h{i}: readmeHtml" for i in range(over)), {"id": experiment_id},
                       status=400)
    assert "over the budget" in answer["errors"][0]["message"] and "readmeHtml" in answer["errors"][0]["message"]
    await gql(client, query % " ".join(f"h{i}: readmeHtml" for i in range(over - 2)), {"id": experiment_id})
    await gql(client, query % " ".join(f"r{i}: readme" for i in range(over * 50)), {"id": experiment_id})
