"""REST ingest and reads through an in-process app (aiohttp_client)."""
from __future__ import annotations

import gzip
import math

import msgpack
from yarl import URL

from ..conftest import MSGPACK, metric_batch, new_experiment, new_run, packb, post_batch


async def test_create_experiment_is_create_or_get(client):
    """The same (namespace, workspace, directory, prefix) returns the same id; readme updates on re-create."""
    body = {"namespace": "alice", "workspace": "vision", "prefix": "resnet"}
    first = await (await client.post("/api/v1/experiments", json=body)).json()
    second = await (await client.post("/api/v1/experiments", json={**body, "readme": "v2"})).json()
    other = await (await client.post("/api/v1/experiments", json={**body, "directory": "sweeps"})).json()
    assert first["created"] and not second["created"] and other["created"]
    assert first["experiment_id"] == second["experiment_id"] != other["experiment_id"]
    record = await (await client.get(f"/api/v1/experiments/{first['experiment_id']}")).json()
    assert record["readme"] == "v2" and record["directory"] == ""


async def test_create_run_is_idempotent_on_client_run_id(client):
    """A retried run creation returns the run it already made."""
    experiment_id = await new_experiment(client)
    assert await new_run(client, experiment_id, "r") == await new_run(client, experiment_id, "r")
    assert await new_run(client, experiment_id, "r") != await new_run(client, experiment_id, "other")


async def test_run_status_drives_experiment_status(client):
    """The experiment reports its latest run's status and times."""
    experiment_id = await new_experiment(client)
    run_id = await new_run(client, experiment_id)
    record = await (await client.get(f"/api/v1/experiments/{experiment_id}")).json()
    assert record["status"] == "RUNNING" and record["started_at"] and record["completed_at"] is None
    answer = await client.patch(f"/api/v1/runs/{run_id}", json={"status": "FAILED", "error": "boom", "ended_at": 5.0})
    assert answer.status == 200
    record = await (await client.get(f"/api/v1/experiments/{experiment_id}")).json()
    assert record["status"] == "FAILED" and record["completed_at"] == 5.0
    assert record["runs"][0]["error"] == "boom"
    bad = await client.patch(f"/api/v1/runs/{run_id}", json={"status": "DONE"})
    assert bad.status == 400


async def test_batch_replay_is_not_duplicated(client):
    """Replaying an acked batch answers 200 duplicate and stores nothing twice."""
    experiment_id = await new_experiment(client)
    batch = metric_batch(0, 100, range(10))
    first = await (await post_batch(client, experiment_id, batch)).json()
    again = await post_batch(client, experiment_id, batch)
    assert first == {"acked": 100, "stored": 10}
    assert again.status == 200 and await again.json() == {"acked": 100, "stored": 0, "duplicate": True}
    series = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).json()
    assert series["count"] == 10 and series["steps"] == list(range(10))


async def test_batch_as_jsonl_bytes_is_parsed_by_the_server(client):
    """A batch sent as the client's JSONL bytes stores its records; blank and torn lines are skipped; replay is a no-op."""
    experiment_id = await new_experiment(client)
    lines = (b'{"timestamp":1.0,"step":0,"metrics":{"loss":0.5}}\n\n'
             b'{"timestamp":2.0,"step":1,"metr{"timestamp":3.0,"step":2,"metrics":{"loss":1.5}}\n'  # torn by a crash
             b'[1, 2]\n{"timestamp":4.0,"step":3,"metrics":{"loss":"NaN","ok":true}}\n')
    batch = {"stream": "metrics", "stream_id": "c1:metrics", "start": 0, "end": len(lines), "lines": lines}
    first = await post_batch(client, experiment_id, batch)
    assert first.status == 200 and await first.json() == {"acked": len(lines), "stored": 2}
    again = await post_batch(client, experiment_id, batch)
    assert await again.json() == {"acked": len(lines), "stored": 0, "duplicate": True}
    series = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).json()
    assert series["steps"] == [0, 3] and series["values"] == [0.5, "NaN"]  # REST spells NaN as in JSONL


async def test_malformed_jsonl_bytes_batches_are_400(client):
    """'lines' must be bytes covering exactly end - start, end with a newline, and not come with 'events'."""
    experiment_id = await new_experiment(client)
    line = b'{"timestamp":1.0,"step":0,"metrics":{"loss":0.5}}\n'
    bad = [({"lines": line, "end": len(line) + 1}, "covers"),
           ({"lines": line[:-1], "end": len(line) - 1}, "newline"),
           ({"lines": line.decode(), "end": len(line)}, "bytes"),
           ({"lines": line, "end": len(line), "events": []}, "either")]
    for fields, message in bad:
        batch = {"stream": "metrics", "stream_id": "c1:metrics", "start": 0, **fields}
        answer = await post_batch(client, experiment_id, batch)
        assert answer.status == 400 and message in (await answer.json())["error"], (fields, await answer.text())
    answer = await post_batch(client, experiment_id, {"stream": "metrics", "stream_id": "c1:metrics", "start": 0,
                                                      "end": len(line), "lines": line})
    assert answer.status == 200 and (await answer.json())["stored"] == 1  # nothing was applied by the refused ones


async def test_gap_and_overlap_are_409_with_acked(client):
    """A batch that skips ahead or overlaps the acked offset is refused with the offset to resume from."""
    experiment_id = await new_experiment(client)
    await post_batch(client, experiment_id, metric_batch(0, 100, range(10)))
    gap = await post_batch(client, experiment_id, metric_batch(150, 200, range(10, 15)))
    overlap = await post_batch(client, experiment_id, metric_batch(50, 150, range(5, 15)))
    assert gap.status == 409 and (await gap.json())["acked"] == 100
    assert overlap.status == 409 and (await overlap.json())["acked"] == 100
    resumed = await post_batch(client, experiment_id, metric_batch(100, 200, range(10, 20)))
    assert (await resumed.json())["acked"] == 200
    streams = await (await client.get(f"/api/v1/experiments/{experiment_id}/streams")).json()
    assert streams == {"streams": {"c1:metrics": 200}, "ordered": True}


async def test_metric_values_round_trip_including_nonfinite(client):
    """NaN, infinities, ints, bools and null survive storage; REST spells non-finite values as in JSONL."""
    experiment_id = await new_experiment(client)
    values = [1.5, math.nan, math.inf, -math.inf, 7, True, None]
    batch = metric_batch(0, 10, range(len(values)), value=lambda s: values[s])
    assert (await post_batch(client, experiment_id, batch)).status == 200
    series = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).json()
    assert series["values"] == [1.5, "NaN", "Infinity", "-Infinity", 7, 1, None]
    assert series["min"] == 1 and series["max"] == 7
    record = await (await client.get(f"/api/v1/experiments/{experiment_id}")).json()
    assert record["last_metrics"] == {"loss": None}


async def test_json_batches_accept_nonfinite_spellings(client):
    """curl users send JSON with "NaN"/"Infinity" strings."""
    experiment_id = await new_experiment(client)
    batch = {"stream": "metrics", "stream_id": "s", "start": 0, "end": 3,
             "events": [{"timestamp": 1.0, "step": 0, "metrics": {"a": "NaN", "b": "-Infinity"}}]}
    assert (await client.post(f"/api/v1/experiments/{experiment_id}/batches", json=batch)).status == 200
    series = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/b")).json()
    assert series["values"] == ["-Infinity"]


async def test_gzip_msgpack_batch(client):
    """Content-Encoding: gzip bodies are inflated."""
    experiment_id = await new_experiment(client)
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/batches",
                               data=gzip.compress(packb(metric_batch(0, 10, range(3)))),
                               headers={**MSGPACK, "Content-Encoding": "gzip"})
    assert answer.status == 200 and (await answer.json())["stored"] == 3


async def test_parameters_merge_set_extend_update(client):
    """set replaces, extend deep-merges, update sets a dotted key."""
    experiment_id = await new_experiment(client)
    events = [{"timestamp": 1.0, "operation": "set", "data": {"model": {"layers": 50}, "lr": 0.1}},
              {"timestamp": 2.0, "operation": "extend", "data": {"model": {"dropout": 0.2}}},
              {"timestamp": 3.0, "operation": "update", "key": "optim.lr", "value": 0.01}]
    batch = {"stream": "parameters", "stream_id": "p", "start": 0, "end": 30, "events": events}
    assert (await post_batch(client, experiment_id, batch)).status == 200
    params = await (await client.get(f"/api/v1/experiments/{experiment_id}/parameters")).json()
    assert params == {"model": {"layers": 50, "dropout": 0.2}, "lr": 0.1, "optim": {"lr": 0.01}}


async def test_logs_filter_and_limit(client):
    """Logs filter by level; limit keeps the newest entries, oldest first."""
    experiment_id = await new_experiment(client)
    events = [{"timestamp": float(i), "level": "INFO" if i % 2 else "warning", "message": f"m{i}",
               "context": {"i": i}} for i in range(6)]
    batch = {"stream": "logs", "stream_id": "l", "start": 0, "end": 60, "events": events}
    assert (await post_batch(client, experiment_id, batch)).status == 200
    logs = (await (await client.get(f"/api/v1/experiments/{experiment_id}/logs?level=warning&limit=2")).json())["logs"]
    assert [entry["message"] for entry in logs] == ["m2", "m4"] and logs[0]["context"] == {"i": 2}


async def test_malformed_bodies_are_400(client):
    """Garbage msgpack/JSON/gzip and wrong field types are 400 with a message, never 500."""
    experiment_id = await new_experiment(client)
    url = f"/api/v1/experiments/{experiment_id}/batches"
    bad_bodies = [
        (b"\xc1\xff\x00", MSGPACK),
        (b"{not json", {"Content-Type": "application/json"}),
        (b"not gzip", {**MSGPACK, "Content-Encoding": "gzip"}),
        (packb([1, 2]), MSGPACK),
        (packb({**metric_batch(0, 1, range(1)), "start": "0"}), MSGPACK),
        (packb({**metric_batch(0, 1, range(1)), "stream": "videos"}), MSGPACK),
        (packb({**metric_batch(5, 1, range(1))}), MSGPACK),
        (msgpack.packb({**metric_batch(0, 1, range(1)), "stream_id": msgpack.ExtType(1, b"x")}), MSGPACK),
        (b"hello", {"Content-Type": "text/plain"}),
    ]
    for body, headers in bad_bodies:
        answer = await client.post(url, data=body, headers=headers)
        assert answer.status == 400, (body, await answer.text())
        assert "error" in await answer.json()
    # A bad metric record is refused, not its batch (tests/server/test_ingest_limits.py): listed, its bytes acked.
    answer = await client.post(url, data=packb(metric_batch(0, 1, range(1), value=lambda s: "high")), headers=MSGPACK)
    body = await answer.json()
    assert answer.status == 200 and body["stored"] == 0 and body["acked"] == 1, body
    assert body["rejected"][0]["index"] == 0 and "metric 'loss'" in body["rejected"][0]["error"]


async def test_limits_are_413_and_400(make_client):
    """Oversize bodies and too many events are 413; over-long names are 400 (a metric's: that record is rejected)."""
    client = await make_client(max_body_bytes=4096, max_events=5, max_name_length=16)
    experiment_id = await new_experiment(client)
    too_many = await post_batch(client, experiment_id, metric_batch(0, 10, range(6)))
    assert too_many.status == 413 and "limit" in (await too_many.json())["error"]
    too_big = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=b"\x00" * 5000, headers=MSGPACK)
    assert too_big.status == 413
    bomb = await client.post(f"/api/v1/experiments/{experiment_id}/batches", headers={**MSGPACK, "Content-Encoding": "gzip"},
                             data=gzip.compress(packb({**metric_batch(0, 1, range(1)), "pad": "x" * 100_000})))
    assert bomb.status == 413
    long_name = await post_batch(client, experiment_id, metric_batch(0, 10, range(1), name="n" * 17))
    assert long_name.status == 200 and (await long_name.json())["rejected_count"] == 1  # the record, not the batch
    long_prefix = await client.post("/api/v1/experiments", json={"namespace": "a", "workspace": "w", "prefix": "p" * 17})
    assert long_prefix.status == 400


async def test_unknown_experiment_and_run_are_404(client):
    """Batches, reads and run updates on unknown ids are 404."""
    assert (await post_batch(client, "nope", metric_batch(0, 1, range(1)))).status == 404
    assert (await client.get("/api/v1/experiments/nope")).status == 404
    assert (await client.patch("/api/v1/runs/nope", json={"status": "COMPLETED"})).status == 404
    experiment_id = await new_experiment(client)
    assert (await post_batch(client, experiment_id, metric_batch(0, 1, range(1), run_id="nope"))).status == 404
    assert (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/absent")).status == 404


async def test_list_and_downsample_reads(client):
    """Listing filters by namespace/status; max_points downsampling keeps a spike."""
    experiment_id = await new_experiment(client)
    await new_experiment(client, namespace="bob")
    await new_run(client, experiment_id)
    batch = metric_batch(0, 1, range(10_000), value=lambda s: 1e6 if s == 4321 else 1.0)
    assert (await post_batch(client, experiment_id, batch)).status == 200
    series = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss?max_points=100")).json()
    assert series["count"] == 10_000 and len(series["values"]) <= 200 and 1e6 in series["values"]
    assert 4321 in series["steps"]
    listed = await (await client.get("/api/v1/experiments?namespace=alice&status=RUNNING")).json()
    assert [e["id"] for e in listed["experiments"]] == [experiment_id]
    assert (await client.get("/api/v1/experiments?limit=zero")).status == 400


async def test_msgpack_answers_on_request(client):
    """Accept: application/msgpack gets a msgpack answer."""
    answer = await client.post("/api/v1/experiments", data=packb({"namespace": "a", "workspace": "w", "prefix": "p"}),
                               headers={**MSGPACK, "Accept": "application/msgpack"})
    assert answer.content_type == "application/msgpack"
    assert msgpack.unpackb(await answer.read())["created"] is True


async def test_metric_names_with_slashes_are_percent_encoded(client):
    """A metric named 'train/loss' is read at metrics/train%2Floss."""
    experiment_id = await new_experiment(client)
    await post_batch(client, experiment_id, metric_batch(0, 1, range(3), name="train/loss"))
    answer = await client.get(URL(f"/api/v1/experiments/{experiment_id}/metrics/train%2Floss", encoded=True))
    assert answer.status == 200 and (await answer.json())["name"] == "train/loss"
