"""Tags and notes reach the server when the client changes them, and only then."""
from __future__ import annotations

import json
import urllib.request

from .conftest import get_json


def _graphql(base_url, query, variables=None):
    request = urllib.request.Request(f"{base_url}/graphql", data=json.dumps({"query": query, "variables": variables
                                                                               or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["data"]


def test_tags_and_notes_are_uploaded_when_they_change(make_exp, server, remote_env):
    """tags= at construction and edits during the run are on the server once the run completes; a later session
    that changes nothing leaves an edit made on the server alone, and one that removes a tag removes only that."""
    exp = make_exp("annotated", remote=server, tags=["baseline"])
    with exp.run():
        exp.tags.add("resnet")
        exp.notes = "first try"
        exp.metrics.log(step=0, loss=1.0)
    record = get_json(f"{server}/api/v1/experiments/{exp.experiment_id}")
    assert record["tags"] == ["baseline", "resnet"] and record["notes"] == "first try"
    _graphql(server, 'mutation($id: ID!) { addTags(id: $id, tags: ["from-dashboard"]) { tags } }',
             {"id": exp.experiment_id})
    again = make_exp("annotated", remote=server)
    with again.run():
        again.metrics.log(step=1, loss=0.5)
    assert get_json(f"{server}/api/v1/experiments/{exp.experiment_id}")["tags"] == [
        "baseline", "resnet", "from-dashboard"]
    with again.run():
        again.tags.remove("baseline")
    record = get_json(f"{server}/api/v1/experiments/{exp.experiment_id}")
    assert record["tags"] == ["resnet", "from-dashboard"] and record["notes"] == "first try"


def test_notes_arrive_when_the_server_refuses_the_tags(make_exp, server, remote_env, caplog):
    """Tags added on the dashboard plus the client's pass the server's limit: the notes still arrive, the refusal is
    reported once (one WARNING naming the tags and the server's reason), and the tags stay pending (not marked sent):
    once the dashboard makes room, the next session sends them."""
    from ml_dash.client.upload.state import SyncState
    from ml_dash.format.limits import MAX_TAGS

    exp = make_exp("crowded", remote=server)
    dashboard = [f"d{i}" for i in range(MAX_TAGS - 5)]
    mine = [f"c{i}" for i in range(10)]
    with caplog.at_level("DEBUG", logger="ml_dash"), exp.run():  # a remote experiment registers when its run starts
        _graphql(server, "mutation($id: ID!, $tags: [String!]!) { addTags(id: $id, tags: $tags) { tags } }",
                 {"id": exp.experiment_id, "tags": dashboard})
        exp.tags.add(*mine)
        exp.notes = "lr too high"
        exp.metrics.log(step=0, loss=1.0)
    record = get_json(f"{server}/api/v1/experiments/{exp.experiment_id}")
    assert record["notes"] == "lr too high"
    assert record["tags"] == dashboard
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]  # sent once: no retry in a loop
    assert [r.levelname for r in refusals] == ["WARNING"], [r.getMessage() for r in refusals]
    assert "tags" in refusals[0].getMessage() and str(MAX_TAGS) in refusals[0].getMessage()
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "not finished" in r.getMessage()]
    assert not set(mine) & set(SyncState(exp.local_path).annotations.get("tags") or [])  # still pending

    _graphql(server, "mutation($id: ID!, $tags: [String!]!) { removeTags(id: $id, tags: $tags) { tags } }",
             {"id": exp.experiment_id, "tags": dashboard[:20]})
    again = make_exp("crowded", remote=server)
    with again.run():
        again.metrics.log(step=1, loss=0.5)
    record = get_json(f"{server}/api/v1/experiments/{exp.experiment_id}")
    assert record["tags"] == dashboard[20:] + mine and record["notes"] == "lr too high"
