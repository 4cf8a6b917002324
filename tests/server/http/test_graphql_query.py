"""GraphQL experimentPage (filtered, sorted, paged in the database) and the tag/notes/delete mutations."""
from __future__ import annotations

from ..conftest import new_experiment, new_run, post_batch
from .test_graphql import gql

PAGE = """query($f: String, $o: String, $limit: Int, $offset: Int, $deleted: Boolean) {
  experimentPage(filter: $f, orderBy: $o, limit: $limit, offset: $offset, includeDeleted: $deleted) {
    total items { id prefix tags notes deletedAt params lastMetrics status } } }"""


async def _seed(client, namespace="alice") -> dict[str, str]:
    ids = {}
    for i, (prefix, lr, loss) in enumerate([("resnet-a", 0.001, 0.3), ("resnet-b", 0.01, 0.2), ("vit", 0.1, 0.5)]):
        experiment_id = ids[prefix] = await new_experiment(client, prefix, namespace)
        run_id = await new_run(client, experiment_id, f"r{i}")
        for stream, events in (("parameters", [{"timestamp": 1.0, "operation": "set", "data": {"lr": lr}}]),
                               ("metrics", [{"timestamp": 1.0, "step": 0, "metrics": {"loss": loss}}])):
            answer = await post_batch(client, experiment_id, {"stream": stream, "stream_id": stream, "start": 0,
                                                              "end": 1, "run_id": run_id, "events": events})
            assert answer.status == 200, await answer.text()
    return ids


async def test_experiment_page_filters_orders_and_counts(client):
    """A filter and an order run server-side; total counts every match while items hold one page."""
    await _seed(client)
    data = (await gql(client, PAGE, {"f": "params.lr < 0.05 and prefix like 'resnet%'", "o": "metrics.loss asc",
                                     "limit": 1}))["data"]["experimentPage"]
    assert data["total"] == 2 and [e["prefix"] for e in data["items"]] == ["resnet-b"]
    assert data["items"][0]["params"] == {"lr": 0.01} and data["items"][0]["tags"] == []
    data = (await gql(client, PAGE, {"o": "params.lr desc", "offset": 1}))["data"]["experimentPage"]
    assert [e["prefix"] for e in data["items"]] == ["resnet-b", "resnet-a"] and data["total"] == 3


async def test_bad_filter_is_an_error_naming_the_position(client):
    """A syntax error in filter or orderBy is a GraphQL error (400) that says where."""
    await _seed(client)
    answer = await gql(client, PAGE, {"f": "params.lr << 1"}, status=400)
    assert "at position 11" in answer["errors"][0]["message"]
    answer = await gql(client, PAGE, {"o": "metrics.loss sideways"}, status=400)
    assert "orderBy" in answer["errors"][0]["message"] and "position 13" in answer["errors"][0]["message"]


async def test_mutations_edit_tags_notes_and_delete(client):
    """setTags/addTags/removeTags, setNotes, deleteExperiment/restoreExperiment change what pages show."""
    ids = await _seed(client)
    target = ids["vit"]
    mutation = """mutation($id: ID!) { setTags(id: $id, tags: ["x", "y"]) { tags }
      addTags(id: $id, tags: ["z", "x"]) { tags } removeTags(id: $id, tags: ["y"]) { tags }
      setNotes(id: $id, notes: "lr too high") { notes } }"""
    data = (await gql(client, mutation, {"id": target}))["data"]
    assert data["setTags"]["tags"] == ["x", "y"] and data["addTags"]["tags"] == ["x", "y", "z"]
    assert data["removeTags"]["tags"] == ["x", "z"] and data["setNotes"]["notes"] == "lr too high"
    page = (await gql(client, PAGE, {"f": "tags contains 'z'"}))["data"]["experimentPage"]
    assert [e["id"] for e in page["items"]] == [target] and page["items"][0]["notes"] == "lr too high"
    deleted = (await gql(client, 'mutation($id: ID!) { deleteExperiment(id: $id) { deletedAt } }',
                         {"id": target}))["data"]["deleteExperiment"]
    assert deleted["deletedAt"] > 0
    assert (await gql(client, PAGE, {}))["data"]["experimentPage"]["total"] == 2
    listed = (await gql(client, "{ experiments { id } }"))["data"]["experiments"]
    assert target not in [e["id"] for e in listed]
    page = (await gql(client, PAGE, {"deleted": True}))["data"]["experimentPage"]
    assert page["total"] == 3
    await gql(client, 'mutation($id: ID!) { restoreExperiment(id: $id) { deletedAt } }', {"id": target})
    assert (await gql(client, PAGE, {}))["data"]["experimentPage"]["total"] == 3
    answer = await gql(client, 'mutation($id: ID!) { addTags(id: $id, tags: [""]) { tags } }', {"id": target})
    assert "non-empty" in answer["errors"][0]["message"]


async def test_mutations_and_pages_honour_token_namespaces(make_client):
    """A token limited to one namespace sees only its experiments and may not edit another's (403)."""
    client = await make_client(tokens={"admin": None, "bob": frozenset(["bob"])})
    admin, bob = {"Authorization": "Bearer admin"}, {"Authorization": "Bearer bob"}
    alice_id = await new_experiment(client, "a", "alice", headers=admin)
    bob_id = await new_experiment(client, "b", "bob", headers=admin)
    page = (await gql(client, PAGE, {}, headers=bob))["data"]["experimentPage"]
    assert [e["id"] for e in page["items"]] == [bob_id]
    await gql(client, 'mutation($id: ID!) { deleteExperiment(id: $id) { id } }', {"id": alice_id}, headers=bob,
              status=403)
    page = (await gql(client, PAGE, {}, headers=admin))["data"]["experimentPage"]
    assert page["total"] == 2
    await gql(client, 'mutation($id: ID!) { deleteExperiment(id: $id) { id } }', {"id": bob_id}, headers=bob)
    assert (await gql(client, PAGE, {}, headers=bob))["data"]["experimentPage"]["total"] == 0


def test_experiment_page_cost_counts_items_by_the_page_limit():
    """items is counted limit times under experimentPage (a fragment too), plus the page's own query cost."""
    from graphql import parse

    from ml_dash.server.http.graphql import schema
    from ml_dash.server.http.graphql_cost import PAGE_QUERY_COST, QueryTooExpensive, check_cost

    small = check_cost(schema, parse("{ experimentPage(limit: 10) { total items { id prefix } } }"), None, None)
    assert small.cost == 1 + PAGE_QUERY_COST + 1 + 1 + 10 * 2
    fragment = "fragment F on ExperimentPage { items { id } } "
    two = check_cost(schema, parse(fragment + "{ a: experimentPage(limit: 5) { ...F } b: experimentPage(limit: $n)"
                                   " { ...F } }".replace("$n", "50")), None, None)
    assert two.cost == 2 * (1 + PAGE_QUERY_COST + 1) + 5 + 50
    heavy = "{ experimentPage(limit: 10000) { items { metric(name: \"loss\") { count } } } }"
    try:
        check_cost(schema, parse(heavy), None, None)
    except QueryTooExpensive as exc:
        assert "budget" in str(exc)
    else:
        raise AssertionError("a page of 10,000 metric reads must be refused")
    try:
        check_cost(schema, parse("{ experimentPage(limit: 10001) { total } }"), None, None)
    except QueryTooExpensive as exc:
        assert "limit is at most" in str(exc)
    else:
        raise AssertionError("limit over the cap must be refused")


async def test_out_of_range_literals_and_nul_are_400_naming_the_literal(client):
    """They parsed and then failed in the database (500): an int past 2**63 on SQLite, 1 and 400 zeros on both
    backends, a NUL in a backticked key on SQLite. Now 400s that name the literal, on both backends."""
    await _seed(client)
    for text, fragment in [("params.lr = 9223372036854775808", None), ("params.lr = 18446744073709551616",
                                                                       "18446744073709551616"),
                           ("params.lr < 1" + "0" * 400, "the integer 1000"), ("params.lr < 1e400", "1e400"),
                           ("params.`a\x00b` = 1", "NUL"), ("prefix like '%\x00%'", "NUL")]:
        if fragment is None:  # 2**63 is an unsigned 64-bit int a parameter may hold: it compares (no match here)
            assert (await gql(client, PAGE, {"f": text}))["data"]["experimentPage"]["total"] == 0
            continue
        answer = await gql(client, PAGE, {"f": text}, status=400)
        assert fragment in answer["errors"][0]["message"], (text, answer)
