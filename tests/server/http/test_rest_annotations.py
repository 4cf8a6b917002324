"""PATCH /api/v1/experiments/{id}: the uploader's tags and notes."""
from __future__ import annotations

from ..conftest import new_experiment


async def test_patch_replaces_adds_removes_and_refuses_bad_input(client):
    """tags replaces, add_tags/remove_tags change, notes sets; a bad tag is a 400 that changes nothing."""
    experiment_id = await new_experiment(client, "p")
    url = f"/api/v1/experiments/{experiment_id}"
    answer = await client.patch(url, json={"tags": ["a", "b"], "notes": "n"})
    assert answer.status == 200 and await answer.json() == {"tags": ["a", "b"], "notes": "n"}
    answer = await client.patch(url, json={"add_tags": ["c"], "remove_tags": ["a"]})
    assert (await answer.json())["tags"] == ["b", "c"]
    for bad in ({"tags": "abc"}, {"add_tags": [""]}, {"notes": 5}):
        answer = await client.patch(url, json=bad)
        assert answer.status == 400, bad
    assert (await (await client.get(url)).json())["tags"] == ["b", "c"]
    assert (await client.patch("/api/v1/experiments/nope", json={"tags": []})).status == 404
