"""Bearer tokens: off by default on loopback, 401 without a valid token, 403 outside a token's namespaces."""
from __future__ import annotations

import pytest

from ml_dash.server.cli import main
from ml_dash.server.config import ConfigError, ServerConfig

from ..conftest import metric_batch, new_experiment, post_batch

TOKENS = {"admin-token": None, "alice-token": frozenset({"alice"})}
ADMIN = {"Authorization": "Bearer admin-token"}
ALICE = {"Authorization": "Bearer alice-token"}


async def test_no_tokens_means_open(client):
    """Without configured tokens the API needs no Authorization header."""
    assert (await client.get("/api/v1/experiments")).status == 200


async def test_missing_or_unknown_token_is_401(make_client):
    """API and GraphQL answer 401 without a known bearer token; /health stays open."""
    client = await make_client(tokens=TOKENS)
    assert (await client.get("/api/v1/experiments")).status == 401
    assert (await client.get("/api/v1/experiments", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/api/v1/experiments", headers={"Authorization": "Basic admin-token"})).status == 401
    assert (await client.post("/graphql", json={"query": "{ namespaces }"})).status == 401
    assert (await client.get("/health")).status == 200
    assert (await client.get("/api/v1/experiments", headers=ADMIN)).status == 200


async def test_namespace_limited_token_is_403_elsewhere(make_client):
    """A token limited to 'alice' cannot create, read, write or query 'bob' experiments."""
    client = await make_client(tokens=TOKENS)
    bob_id = await new_experiment(client, namespace="bob", headers=ADMIN)
    alice_id = await new_experiment(client, namespace="alice", headers=ALICE)
    forbidden = await client.post("/api/v1/experiments", json={"namespace": "bob", "workspace": "w", "prefix": "p"},
                                  headers=ALICE)
    assert forbidden.status == 403 and "bob" in (await forbidden.json())["error"]
    assert (await client.get(f"/api/v1/experiments/{bob_id}", headers=ALICE)).status == 403
    assert (await post_batch(client, bob_id, metric_batch(0, 1, range(1)), headers=ALICE)).status == 403
    assert (await post_batch(client, alice_id, metric_batch(0, 1, range(1)), headers=ALICE)).status == 200
    assert (await client.get("/api/v1/experiments?namespace=bob", headers=ALICE)).status == 403
    listed = await (await client.get("/api/v1/experiments", headers=ALICE)).json()
    assert [e["id"] for e in listed["experiments"]] == [alice_id]
    gql = await client.post("/graphql", json={"query": "{ namespaces experiments { namespace } }"}, headers=ALICE)
    assert (await gql.json())["data"] == {"namespaces": ["alice"], "experiments": [{"namespace": "alice"}]}
    denied = await client.post("/graphql", json={"query": f"{{ experiment(id: \"{bob_id}\") {{ id }} }}"}, headers=ALICE)
    assert denied.status == 403


def test_non_loopback_bind_without_tokens_refuses(monkeypatch, capsys):
    """Binding 0.0.0.0 without tokens is refused with a message saying how to fix it."""
    monkeypatch.delenv("ML_DASH_TOKENS", raising=False)
    with pytest.raises(ConfigError, match="--token"):
        ServerConfig.resolve(host="0.0.0.0")
    assert main(["--host", "0.0.0.0", "--port", "1"]) == 2
    assert "refusing to bind" in capsys.readouterr().err
    assert ServerConfig.resolve(host="0.0.0.0", tokens=["t"]).tokens == {"t": None}
