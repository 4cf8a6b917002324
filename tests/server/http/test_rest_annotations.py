"""PATCH /api/v1/experiments/{id}: the uploader's tags and notes."""
from __future__ import annotations

import pytest

from ml_dash.format.limits import MAX_TAGS

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


async def test_patch_tags_must_be_lists_named_in_the_error(client):
    """Before: {"tags": {"a": 1}} was stored as ["a"] (a dict iterates its keys)."""
    experiment_id = await new_experiment(client, "q")
    url = f"/api/v1/experiments/{experiment_id}"
    for field in ("tags", "add_tags", "remove_tags"):
        answer = await client.patch(url, json={field: {"a": 1}})
        assert answer.status == 400, field
        assert (await answer.json())["error"].startswith(f"{field} must be a list"), await answer.text()
    assert (await (await client.get(url)).json())["tags"] == []


async def test_removing_more_than_the_tag_limit_at_once_is_allowed(client):
    """Before: remove_tags was held to MAX_TAGS too; removing many is harmless (the body size bounds it)."""
    experiment_id = await new_experiment(client, "r")
    url = f"/api/v1/experiments/{experiment_id}"
    await client.patch(url, json={"tags": ["keep", "drop"]})
    answer = await client.patch(url, json={"remove_tags": ["drop", *(f"t{i}" for i in range(MAX_TAGS * 3))]})
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["tags"] == ["keep"]
    answer = await client.patch(url, json={"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]})
    assert answer.status == 400 and f"at most {MAX_TAGS} tags" in (await answer.json())["error"]


async def test_tag_lists_are_checked_off_the_writer_and_the_loop(storage, monkeypatch):
    """Before: the tags were de-duplicated (O(n²)) inside the write, on SQLite's single writer thread or on the
    server's loop (PostgreSQL): 100k tags in one PATCH blocked every client's ingest for 52 s."""
    import threading

    from ml_dash.format import annotations
    from ml_dash.server.storage.sql import query

    threads: list[str] = []
    real = annotations.check_tags

    def spy(tags, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(tags, *args, **kwargs)

    monkeypatch.setattr(query, "check_tags", spy)
    experiment_id, _ = await storage.create_experiment("alice", "vision", "", "tags", None, None)
    many = [f"tag-{i}" for i in range(100_000)]
    with pytest.raises(ValueError, match=f"at most {MAX_TAGS} tags"):
        await storage.edit_tags(experiment_id, replace=many)
    await storage.edit_tags(experiment_id, add=["a"], remove=many)
    assert threads and not any(name == threading.main_thread().name or "writer" in name for name in threads), threads
