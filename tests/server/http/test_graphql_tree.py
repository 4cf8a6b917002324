"""Query.tree (the navigator's levels with counts, from the database) and Query.search, on both backends."""
from __future__ import annotations

import pytest
from graphql import parse

from ml_dash.server.http.graphql import schema
from ml_dash.server.http.graphql_cost import PAGE_QUERY_COST, QueryTooExpensive, check_cost


TREE = "query($ns: String, $ws: String, $dir: String) { tree(namespace: $ns, workspace: $ws, directory: $dir) { name count } }"
SEARCH = "query($text: String!, $ns: String) { search(text: $text, namespace: $ns) { namespace workspace directory prefix } }"


async def gql(client, query, variables=None, headers=None, status=200):
    answer = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    body = await answer.json()
    assert answer.status == status, body
    return body


async def make(client, namespace, workspace, directory, prefix, headers=None):
    answer = await client.post("/api/v1/experiments", json={"namespace": namespace, "workspace": workspace,
                                                            "directory": directory, "prefix": prefix}, headers=headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["experiment_id"]


def level(body):
    return [(n["name"], n["count"]) for n in body["data"]["tree"]]


async def test_tree_levels_count_each_subtree(client):
    """Namespaces, workspaces and directory levels, each with its subtree's number of experiments; names
    that look like LIKE patterns, unicode and deleted experiments are handled."""
    for i in range(3):
        await make(client, "alice", "vision", "sweeps/lr", f"r{i}")
    await make(client, "alice", "vision", "sweeps/wd/deep", "w")
    await make(client, "alice", "vision", "", "top")
    await make(client, "alice", "vision", "50%_off", "odd")
    await make(client, "alice", "vision", "50a_off", "odd")  # not a match of the '50%_off/' prefix below
    await make(client, "alice", "vision", "ünï/x", "u")
    await make(client, "alice", "nlp", "a", "n")
    gone = await make(client, "bob", "misc", "d", "gone")
    await make(client, "bob", "misc", "d", "kept")
    await gql(client, "mutation($id: ID!) { deleteExperiment(id: $id) { id } }", {"id": gone})

    assert level(await gql(client, TREE)) == [("alice", 9), ("bob", 1)]
    assert level(await gql(client, TREE, {"ns": "alice"})) == [("nlp", 1), ("vision", 8)]
    top = level(await gql(client, TREE, {"ns": "alice", "ws": "vision"}))
    assert top == [("50%_off", 1), ("50a_off", 1), ("sweeps", 4), ("ünï", 1)]
    assert level(await gql(client, TREE, {"ns": "alice", "ws": "vision", "dir": "sweeps"})) == [("lr", 3), ("wd", 1)]
    assert level(await gql(client, TREE, {"ns": "alice", "ws": "vision", "dir": "sweeps/wd/"})) == [("deep", 1)]
    assert level(await gql(client, TREE, {"ns": "alice", "ws": "vision", "dir": "sweeps/lr"})) == []
    assert level(await gql(client, TREE, {"ns": "alice", "ws": "vision", "dir": "50%_off"})) == []
    assert level(await gql(client, TREE, {"ns": "bob", "ws": "misc"})) == [("d", 1)]


async def test_tree_and_search_honour_token_namespaces(make_client):
    """A token limited to bob sees only bob at the top level, is refused (403) alice's levels, and finds only bob's
    experiments."""
    client = await make_client(tokens={"admin": None, "bob": frozenset(["bob"])})
    admin, bob = {"Authorization": "Bearer admin"}, {"Authorization": "Bearer bob"}
    await make(client, "alice", "vision", "", "needle-a", headers=admin)
    await make(client, "bob", "misc", "x", "needle-b", headers=admin)
    assert level(await gql(client, TREE, headers=admin)) == [("alice", 1), ("bob", 1)]
    assert level(await gql(client, TREE, headers=bob)) == [("bob", 1)]
    await gql(client, TREE, {"ns": "alice"}, headers=bob, status=403)
    await gql(client, TREE, {"ns": "alice", "ws": "vision"}, headers=bob, status=403)
    found = (await gql(client, SEARCH, {"text": "NEEDLE"}, headers=bob))["data"]["search"]
    assert [e["prefix"] for e in found] == ["needle-b"]
    found = (await gql(client, SEARCH, {"text": "needle"}, headers=admin))["data"]["search"]
    assert [e["prefix"] for e in found] == ["needle-a", "needle-b"]
    await gql(client, SEARCH, {"text": "needle", "ns": "alice"}, headers=bob, status=403)


async def test_search_matches_names_folders_and_readmes(client):
    await make(client, "alice", "vision", "sweeps/Deep", "a")
    await make(client, "alice", "vision", "", "ResNet-50")
    answer = await client.post("/api/v1/experiments", json={"namespace": "alice", "workspace": "vision", "prefix": "r",
                                                            "readme": "a Transformer baseline"})
    assert answer.status == 200
    found = lambda body: [e["prefix"] for e in body["data"]["search"]]
    assert found(await gql(client, SEARCH, {"text": "resnet"})) == ["ResNet-50"]
    assert found(await gql(client, SEARCH, {"text": "deep"})) == ["a"]
    assert found(await gql(client, SEARCH, {"text": "transformer"})) == ["r"]
    assert found(await gql(client, SEARCH, {"text": "50%"})) == []  # plain text, not a pattern
    body = await gql(client, SEARCH, {"text": "  "}, status=400)
    assert "search text must be" in body["errors"][0]["message"]


async def test_tree_arguments_are_checked(client):
    body = await gql(client, "{ tree(workspace: \"w\") { name } }", status=400)
    assert "needs its namespace" in body["errors"][0]["message"]
    body = await gql(client, "{ tree(namespace: \"a\", directory: \"d\") { name } }", status=400)
    assert "needs its namespace and workspace" in body["errors"][0]["message"]


def test_tree_and_search_are_priced_like_a_page():
    cost = check_cost(schema, parse("{ tree(namespace: \"a\") { name count } }"), None, None).cost
    assert cost == 1 + PAGE_QUERY_COST + 1000 * 2
    cost = check_cost(schema, parse("{ search(text: \"a\", limit: 10) { id } }"), None, None).cost
    assert cost == 1 + PAGE_QUERY_COST + 10 * 1
    with pytest.raises(QueryTooExpensive):
        check_cost(schema, parse("{ tree(limit: 10001) { name } }"), None, None)
