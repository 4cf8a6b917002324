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
