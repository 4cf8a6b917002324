"""The ingest edge under hostile or unlucky input: bounded cost, 4xx (never 500), one bad record never blocks a run."""
from __future__ import annotations

import asyncio
import errno
import gzip
import math
import random
import sqlite3

import msgpack
import orjson
import pytest

from ml_dash.format.limits import MAX_METRIC_NAMES_PER_BATCH, MAX_METRICS_PER_EVENT, MAX_NAME_LENGTH
from ml_dash.server.errors import is_disk_full
from ml_dash.server.http.keys import BLOBS_KEY, STORAGE_KEY

from .conftest import MSGPACK, metric_batch, new_experiment, new_run, packb, post_batch

BOUND = 10  # seconds: the most any answer below may take


def batch_of(stream: str, events: list, start: int = 0, end: int = 10) -> dict:
    return {"run_id": None, "stream": stream, "stream_id": "c:" + stream, "start": start, "end": end, "events": events}


async def streams(client, experiment_id: str) -> dict:
    return (await (await client.get(f"/api/v1/experiments/{experiment_id}/streams")).json())["streams"]


# -- 2: parameters nested too deep by the replay -------------------------------------------------------------------
async def test_a_parameter_key_nesting_too_deep_is_400_and_reads_stay_200(client):
    """``update`` of ``"a." * 400 + "b"`` is refused; an over-deep operation already stored does not break reads."""
    experiment_id = await new_experiment(client)
    deep_key = {"timestamp": 1.0, "operation": "update", "key": "a." * 400 + "b", "value": 1}
    answer = await post_batch(client, experiment_id, batch_of("parameters", [deep_key]))
    assert answer.status == 400 and "levels deep" in (await answer.json())["error"]
    # Two operations, each within the limit on its own value, whose replay would exceed it: refused too.
    combined = [{"timestamp": 1.0, "operation": "update", "key": ".".join(["k"] * 150), "value": {"x": {"y": 1}}},
                {"timestamp": 2.0, "operation": "update", "key": ".".join(["k"] * 120), "value": nested(90)}]
    answer = await post_batch(client, experiment_id, batch_of("parameters", combined))
    assert answer.status == 400, await answer.text()
    assert await streams(client, experiment_id) == {}
    # What an older server stored (validation bypassed): every read still answers.
    await client.server.app[STORAGE_KEY].apply_batch(
        experiment_id, None, "parameters", "old:parameters", 0, 10,
        [{"timestamp": 1.0, "operation": "set", "data": {"lr": 0.1}}, deep_key])
    params = await client.get(f"/api/v1/experiments/{experiment_id}/parameters")
    assert params.status == 200 and await params.json() == {"lr": 0.1}
    assert (await client.get(f"/api/v1/experiments/{experiment_id}")).status == 200
    query = "{ experiments { params } }"
    graphql = await (await client.post("/graphql", json={"query": query})).json()
    assert graphql["data"]["experiments"][0]["params"] == {"lr": 0.1}, graphql


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


# -- 3: authorise before decoding; decoding within a budget --------------------------------------------------------
async def test_a_foreign_namespace_is_403_before_the_body_is_decoded(make_client):
    """A token for alice posting a large (here: malformed) body to bob's experiment gets 403, not 400/413."""
    client = await make_client(tokens={"admin": None, "alice-token": frozenset({"alice"})})
    admin, alice = {"Authorization": "Bearer admin"}, {"Authorization": "Bearer alice-token"}
    bobs = await new_experiment(client, namespace="bob", headers=admin)
    body = b"\xdd\x00\x10\x00\x00" + b"\x80" * (4 << 20)  # an array of 1M empty maps, truncated: malformed
    for path in ("/batches", "/runs"):
        answer = await client.post(f"/api/v1/experiments/{bobs}{path}", data=body, headers={**MSGPACK, **alice})
        assert answer.status == 403, (path, await answer.text())
    run_id = await new_run(client, bobs, headers=admin)
    answer = await client.patch(f"/api/v1/runs/{run_id}", data=body, headers={**MSGPACK, **alice})
    assert answer.status == 403, await answer.text()


async def test_decoding_stops_at_the_value_budget(make_client):
    """Maps and arrays count against max_body_items as they are decoded: many tiny values are a 413, bounded."""
    client = await make_client(max_body_items=10_000)
    experiment_id = await new_experiment(client)
    tiny = packb([[{} for _ in range(1000)] for _ in range(20)])  # 20k empty maps in 20 small arrays
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=tiny, headers=MSGPACK)
    assert answer.status == 413 and "values" in (await answer.json())["error"]
    fine = await post_batch(client, experiment_id, metric_batch(0, 10, range(100)))
    assert fine.status == 200 and (await fine.json())["stored"] == 100


async def test_jsonl_lines_count_against_the_value_budget(make_client):
    """A batch's JSONL bytes are budgeted too: 2 MB of ``{"a":[[],[],…]}`` lines are a 413 before any parse."""
    client = await make_client(max_body_items=100_000)
    experiment_id = await new_experiment(client)
    line = b'{"a":[' + b",".join([b"[]"] * 1000) + b"]}\n"
    lines = line * 1000  # 2 MB, 2 million lists
    body = {"run_id": None, "stream": "logs", "stream_id": "c:logs", "start": 0, "end": len(lines), "lines": lines}
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/batches", headers=MSGPACK,
                               data=msgpack.packb(body, use_bin_type=True))
    assert answer.status == 413 and "values" in (await answer.json())["error"]


async def test_json_bodies_are_size_checked(make_client):
    """JSON cannot be budgeted while decoding: a JSON body over max_json_bytes is 413 (msgpack has the budget)."""
    client = await make_client(max_json_bytes=1000)
    experiment_id = await new_experiment(client)
    body = orjson.dumps(metric_batch(0, 10, range(100)))
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=body,
                               headers={"Content-Type": "application/json"})
    assert answer.status == 413 and "JSON" in (await answer.json())["error"]
    assert (await post_batch(client, experiment_id, metric_batch(0, 10, range(100)))).status == 200


# -- 4: non-finite times -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
async def test_non_finite_times_are_400(client, bad):
    """started_at, ended_at, log and parameter timestamps must be finite: 400, nothing stored."""
    experiment_id = await new_experiment(client)
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/runs",
                               data=packb({"client_run_id": "r", "started_at": bad}), headers=MSGPACK)
    assert answer.status == 400 and "finite" in (await answer.json())["error"]
    run_id = await new_run(client, experiment_id)
    answer = await client.patch(f"/api/v1/runs/{run_id}", data=packb({"status": "COMPLETED", "ended_at": bad}),
                                headers=MSGPACK)
    assert answer.status == 400 and "finite" in (await answer.json())["error"]
    for stream, event in [("logs", {"timestamp": bad, "level": "INFO", "message": "m"}),
                          ("parameters", {"timestamp": bad, "operation": "set", "data": {"a": 1}})]:
        answer = await post_batch(client, experiment_id, batch_of(stream, [event]))
        assert answer.status == 400 and "finite" in (await answer.json())["error"], stream
    # A metric record with a non-finite time is rejected (the fast path too); its neighbours are stored.
    events = [{"timestamp": 1.0, "step": 0, "metrics": {"x": 1.0}},
              {"timestamp": bad, "step": 1, "metrics": {"x": 2.0}}]
    answer = await (await post_batch(client, experiment_id, batch_of("metrics", events))).json()
    assert answer["stored"] == 1 and answer["rejected"][0]["index"] == 1 and "finite" in answer["rejected"][0]["error"]
    query = "{ experiments { startedAt runs { endedAt } } }"
    graphql = await (await client.post("/graphql", json={"query": query})).json()
    assert "errors" not in graphql, graphql


# -- 5: metric names per event and per batch -----------------------------------------------------------------------
async def test_too_many_metric_names_are_rejected_per_event_and_per_batch(client):
    """An event over MAX_METRICS_PER_EVENT names is rejected; events adding names past MAX_METRIC_NAMES_PER_BATCH
    distinct ones in a batch are rejected; the others are stored."""
    experiment_id = await new_experiment(client)
    wide = {"timestamp": 1.0, "step": 0, "metrics": {f"m{i}": 1.0 for i in range(MAX_METRICS_PER_EVENT + 1)}}
    per_event = MAX_METRICS_PER_EVENT
    full = [{"timestamp": 1.0, "step": s, "metrics": {f"n{s}_{i}": 1.0 for i in range(per_event)}}
            for s in range(MAX_METRIC_NAMES_PER_BATCH // per_event + 1)]
    repeat = {"timestamp": 2.0, "step": 99, "metrics": {"n0_0": 2.0}}  # a name already in the batch: fine
    answer = await (await post_batch(client, experiment_id, batch_of("metrics", [wide, *full, repeat]))).json()
    assert [r["index"] for r in answer["rejected"]] == [0, len(full)], answer["rejected"]
    assert "limit" in answer["rejected"][0]["error"] and "distinct" in answer["rejected"][1]["error"]
    assert answer["acked"] == 10 and answer["stored"] == len(full) - 1 + 1


# -- 6: compressed file uploads ------------------------------------------------------------------------------------
async def test_a_gzip_file_upload_is_bounded_and_the_connection_closed(client):
    """A gzip body inflating past max_inflation_ratio x its size is 413 at once, and the connection is closed (the
    rest is not inflated); an honest compressed file is stored."""
    experiment_id = await new_experiment(client)
    bomb = gzip.compress(b"\0" * (64 << 20), 9)  # ~65 KB inflating to 64 MiB (1000x)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"PUT /api/v1/experiments/{experiment_id}/files/bomb.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n".encode() + bomb)
    await writer.drain()
    status, rest = await asyncio.wait_for(read_answer(reader), BOUND)
    writer.close()
    assert status == 413 and b"inflates" in rest, rest
    files = await (await client.get(f"/api/v1/experiments/{experiment_id}/files")).json()
    assert files == {"files": []}
    text = b"step,loss\n" * 1000
    answer = await client.put(f"/api/v1/experiments/{experiment_id}/files/log.csv", data=gzip.compress(text),
                              headers={"Content-Encoding": "gzip"})
    assert answer.status == 200 and (await answer.json())["size"] == len(text)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status of an HTTP answer and everything after it until the server closes the connection."""
    status_line = await reader.readline()
    try:
        rest = await reader.read()  # returns only at EOF: the server closed the connection
    except ConnectionResetError:  # closed while a (slow) client was still sending: a reset instead of a FIN
        rest = b""
    return int(status_line.split()[1]), rest


# -- 7: slow bodies ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, idle", [("/batches", True), ("/batches", False), ("/files/slow.bin", True)])
async def test_slow_bodies_time_out_with_408_and_close(make_client, path, idle):
    """A body that stalls (idle) or trickles (a byte at a time, past the whole-body timeout) gets 408 and EOF."""
    client = await make_client(body_timeout=1.0, body_idle_timeout=0.5, file_body_timeout=1.0)
    experiment_id = await new_experiment(client)
    method = "PUT" if "files" in path else "POST"
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"{method} /api/v1/experiments/{experiment_id}{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Content-Type: application/msgpack\r\nContent-Length: 1000\r\n\r\nx".encode())
    await writer.drain()
    answer = asyncio.ensure_future(read_answer(reader))

    async def trickle() -> None:
        try:
            while not idle:
                await asyncio.sleep(0.2)  # pacing of the slow client, shorter than the idle timeout
                writer.write(b"x")
                await writer.drain()
        except ConnectionError:
            pass  # the server closed the connection: what is tested

    sender = asyncio.ensure_future(trickle())
    try:
        status, _ = await asyncio.wait_for(answer, BOUND)
    finally:
        sender.cancel()
        writer.close()
    assert status == 408


# -- 10: disk full -------------------------------------------------------------------------------------------------
async def test_disk_full_is_507_and_the_batch_applies_once_space_returns(client, monkeypatch):
    """SQLite's "database or disk is full", PostgreSQL's DiskFullError, ENOSPC on a blob: 507 with a clear message;
    the retried batch is then stored exactly once."""
    experiment_id = await new_experiment(client)
    storage, blobs = client.server.app[STORAGE_KEY], client.server.app[BLOBS_KEY]
    real_apply = storage.apply_batch

    async def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(storage, "apply_batch", full)
    batch = metric_batch(0, 100, range(10))
    answer = await post_batch(client, experiment_id, batch)
    assert answer.status == 507 and "disk is full" in (await answer.json())["error"]
    assert answer.headers["Retry-After"]
    monkeypatch.setattr(storage, "apply_batch", real_apply)
    assert await (await post_batch(client, experiment_id, batch)).json() == {"acked": 100, "stored": 10}
    assert (await (await post_batch(client, experiment_id, batch)).json())["duplicate"] is True

    async def no_space(chunks, max_bytes):
        async for _ in chunks:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(blobs, "put", no_space)
    answer = await client.put(f"/api/v1/experiments/{experiment_id}/files/a.bin", data=b"x" * 1000)
    assert answer.status == 507, await answer.text()


def test_disk_full_is_recognised_through_wrapping():
    """The kinds of "disk full" each backend raises, also when wrapped in another exception."""
    asyncpg = pytest.importorskip("asyncpg")
    assert is_disk_full(asyncpg.exceptions.DiskFullError("could not extend file"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("spool failed") from exc
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(sqlite3.OperationalError("no such table: x")) and not is_disk_full(ValueError("x"))


# -- 11: names as the client checks them ---------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("namespace", "../../x"), ("namespace", "/abs"), ("namespace", "."), ("namespace", ".."), ("namespace", "a\0b"),
    ("namespace", "a/b"), ("workspace", ".."), ("workspace", "a/b"), ("prefix", "a/../b"), ("prefix", "/abs"),
    ("prefix", "a\\b"), ("directory", "../up"), ("directory", "/abs"), ("directory", "x\0"),
    ("prefix", "p" * (MAX_NAME_LENGTH + 1)),
])
async def test_unsafe_names_are_400(client, field, value):
    """Namespace, workspace, prefix and directory follow the client's rules (format/names.py) on the server too."""
    body = {"namespace": "alice", "workspace": "vision", "prefix": "exp", field: value}
    answer = await client.post("/api/v1/experiments", json=body)
    assert answer.status == 400, (field, value, await answer.text())
    listed = await (await client.get("/api/v1/experiments")).json()
    assert listed == {"experiments": []}


async def test_nested_names_are_normalised_as_the_client_does(client):
    """``a//b/`` is the client's ``a/b``: the same experiment."""
    body = {"namespace": "alice", "workspace": "vision", "directory": "runs//2024/", "prefix": "sweep/lr_0.1"}
    first = await (await client.post("/api/v1/experiments", json=body)).json()
    again = await (await client.post("/api/v1/experiments", json={**body, "directory": "runs/2024"})).json()
    assert again == {"experiment_id": first["experiment_id"], "created": False}


async def test_nul_in_free_text_is_stored_as_a_replacement_character(client):
    """PostgreSQL stores no NUL: a log line or a parameter holding one is stored with U+FFFD, not a 500; a metric
    name holding one rejects its record."""
    experiment_id = await new_experiment(client)
    answer = await post_batch(client, experiment_id, batch_of("logs", [
        {"timestamp": 1.0, "level": "INFO", "message": "a\0b", "context": {"k\0": "v\0"}}]))
    assert answer.status == 200, await answer.text()
    answer = await post_batch(client, experiment_id, batch_of("parameters", [
        {"timestamp": 1.0, "operation": "update", "key": "x\0", "value": "y\0"}]))
    assert answer.status == 200, await answer.text()
    events = [{"timestamp": 1.0, "step": 0, "metrics": {"a\0": 1.0}},
              {"timestamp": 1.0, "step": 1, "metrics": {"a": 1.0}}]
    answer = await (await post_batch(client, experiment_id, batch_of("metrics", events))).json()
    assert answer["stored"] == 1 and answer["rejected"][0]["index"] == 0 and "NUL" in answer["rejected"][0]["error"]
    logs = (await (await client.get(f"/api/v1/experiments/{experiment_id}/logs")).json())["logs"]
    assert logs[0]["message"] == "a\ufffdb" and logs[0]["context"] == {"k\ufffd": "v\ufffd"}
    params = await (await client.get(f"/api/v1/experiments/{experiment_id}/parameters")).json()
    assert params == {"x\ufffd": "y\ufffd"}


# -- 13: one bad record never blocks a run -------------------------------------------------------------------------
async def test_a_too_long_metric_name_is_rejected_alone_and_the_run_continues(client):
    """The client's JSONL bytes with a 300-character name in the middle: the record is rejected (listed in the
    answer), the others stored, the bytes acknowledged; a replay stores nothing twice; the next batch continues."""
    experiment_id = await new_experiment(client)
    records = [{"timestamp": 1.0 + i, "step": i, "metrics": {"loss": i / 2}} for i in range(5)]
    records[2] = {"timestamp": 3.0, "step": 2, "metrics": {"x" * 300: 1.0, "loss": 1.0}}
    lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
    body = {"run_id": None, "stream": "metrics", "stream_id": "c:metrics", "start": 0, "end": len(lines),
            "lines": lines}
    first = await client.post(f"/api/v1/experiments/{experiment_id}/batches", headers=MSGPACK,
                              data=msgpack.packb(body, use_bin_type=True))
    answer = await first.json()
    assert first.status == 200 and answer["acked"] == len(lines) and answer["stored"] == 4, answer
    assert answer["rejected_count"] == 1 and answer["rejected"][0]["index"] == 2
    assert str(MAX_NAME_LENGTH) in answer["rejected"][0]["error"]
    again = await (await client.post(f"/api/v1/experiments/{experiment_id}/batches", headers=MSGPACK,
                                     data=msgpack.packb(body, use_bin_type=True))).json()
    assert again == {"acked": len(lines), "stored": 0, "duplicate": True}
    more = orjson.dumps({"timestamp": 9.0, "step": 5, "metrics": {"loss": 9.0}}) + b"\n"
    follow = {**body, "start": len(lines), "end": len(lines) + len(more), "lines": more}
    answer = await (await client.post(f"/api/v1/experiments/{experiment_id}/batches", headers=MSGPACK,
                                      data=msgpack.packb(follow, use_bin_type=True))).json()
    assert answer == {"acked": len(lines) + len(more), "stored": 1}
    series = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).json()
    assert series["steps"] == [0, 1, 3, 4, 5]


async def test_a_really_full_sqlite_database_is_507_and_unharmed(tmp_path):
    """SQLite refusing to grow (max_page_count: SQLITE_FULL, as on a full disk) answers 507; the batches stored
    before stay whole, and the refused one is stored exactly once when there is room again."""
    from aiohttp.test_utils import TestClient, TestServer

    from ml_dash.server import ServerConfig, create_app

    config = ServerConfig(data_dir=str(tmp_path), db_url=f"sqlite:///{tmp_path}/x.db")
    client = TestClient(TestServer(create_app(config)))
    await client.start_server()
    try:
        storage = client.server.app[STORAGE_KEY]
        if not hasattr(storage, "_wconn") or not hasattr(storage, "_writer"):
            pytest.skip("the SQLite storage's writer connection moved; the monkeypatched 507 test still covers this")
        loop = asyncio.get_running_loop()

        def pragma(sql: str) -> int:
            return storage._wconn.execute(sql).fetchone()[0]

        experiment_id = await new_experiment(client)
        first = metric_batch(0, 100, range(100))
        assert (await post_batch(client, experiment_id, first)).status == 200
        pages = await loop.run_in_executor(storage._writer, pragma, "PRAGMA page_count")
        await loop.run_in_executor(storage._writer, pragma, f"PRAGMA max_page_count={pages + 2}")
        # Noise for values: metric chunks are compressed, and a smooth 20,000-point series would fit in two pages.
        noise = random.Random(0)
        big = metric_batch(100, 200, range(100, 20_100), name="big", value=lambda step: noise.random())
        answer = await post_batch(client, experiment_id, big)
        assert answer.status == 507 and "disk is full" in (await answer.json())["error"], await answer.text()
        assert await streams(client, experiment_id) == {"c1:metrics": 100}
        await loop.run_in_executor(storage._writer, pragma, "PRAGMA max_page_count=1073741823")
        assert await (await post_batch(client, experiment_id, big)).json() == {"acked": 200, "stored": 20_000}
        series = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/loss")).json()
        assert series["count"] == 100
        assert (await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/big")).json())["count"] == 20_000
    finally:
        await client.close()


def test_the_uploader_sends_a_run_holding_a_too_long_metric_name_whole(make_exp, tmp_path):
    """End to end: a run whose metrics.jsonl holds a 300-character name in the middle (written by a client that did
    not check it) is synced: every other point arrives once, the run is COMPLETED, nothing is parked."""
    from ml_dash.server.testing import running_server
    from ml_dash.client.upload.sync_command import sync_paths

    exp = make_exp("long-name")
    with exp.run():
        for step in range(50):
            exp.metrics.log(step=step, loss=step / 10)
    path = f"{exp.local_path}/metrics.jsonl"
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    bad = orjson.dumps({"timestamp": 1.0, "step": 25, "metrics": {"x" * 300: 1.0}}) + b"\n"
    with open(path, "wb") as f:
        f.write(b"".join(lines[:25] + [bad] + lines[25:]))
    with running_server(tmp_path / "server-data") as base_url:
        results = sync_paths([exp.local_path], base_url, show_progress=False, attempts=2)
        assert [r.error for r in results] == [None] and results[0].run_status == "COMPLETED"
        again = sync_paths([exp.local_path], base_url, show_progress=False, attempts=2)
        assert sum(again[0].events.values()) == 0
        import urllib.request

        def get(url: str) -> dict:
            with urllib.request.urlopen(base_url + url, timeout=BOUND) as answer:
                return orjson.loads(answer.read())

        (experiment,) = get("/api/v1/experiments")["experiments"]
        series = get(f"/api/v1/experiments/{experiment['id']}/metrics/loss")
        assert series["steps"] == list(range(50)) and experiment["status"] == "COMPLETED"
