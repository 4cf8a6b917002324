"""Compact answers: compressed bodies (gzip, zstd) when the client accepts them, and seriesBatch's base64 arrays."""
from __future__ import annotations

import base64
import gzip
import math

import numpy as np
import orjson
import pytest

from ml_dash.server.http import compression
from ml_dash.server.http.compression import accepted

from ..conftest import metric_batch, new_experiment, new_run, post_batch
from .test_graphql_series import gql, seeded_runs

zstandard = pytest.importorskip("zstandard")

BATCH = """query($ids: [ID!]!, $name: String!, $n: Int, $x: String, $e: String) {
  seriesBatch(experimentIds: $ids, name: $name, maxPoints: $n, x: $x, encoding: $e) {
    experimentId name count steps values min max times } }"""
TYPES = {"f8": "<f8", "f4": "<f4", "i4": "<i4"}


def decoded(text: str) -> list:
    kind, _, data = text.partition(":")
    return [None if v != v else v for v in np.frombuffer(base64.b64decode(data), TYPES[kind]).tolist()]


def test_accept_encoding_picks_zstd_then_gzip_and_honours_q_zero():
    assert accepted("gzip, deflate, br, zstd") == "zstd"
    assert accepted("gzip") == "gzip"
    assert accepted("zstd;q=0, gzip;q=0.5") == "gzip"
    assert accepted("*") == "zstd" and accepted("*, zstd;q=0") == "gzip"
    assert accepted("") is None and accepted("identity") is None and accepted("br, deflate") is None


INFLATE = {"gzip": gzip.decompress, "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
async def test_big_answers_are_compressed_when_accepted(client, encoding):
    """A GraphQL answer past MIN_BYTES goes out in the accepted encoding (inflated, the same JSON); a small one goes
    as it is; without Accept-Encoding nothing is compressed."""
    ids = await seeded_runs(client, 3, points=500)
    headers = {"Accept-Encoding": encoding}
    answer = await client.post("/graphql", json={"query": BATCH, "variables": {"ids": ids, "name": "loss", "n": 200}},
                               headers=headers, auto_decompress=False)
    assert answer.status == 200 and answer.headers["Content-Encoding"] == encoding
    assert "Accept-Encoding" in answer.headers["Vary"]
    raw = await answer.read()
    body = orjson.loads(INFLATE[encoding](raw))
    assert len(raw) < len(orjson.dumps(body)) / 2
    assert [s["experimentId"] for s in body["data"]["seriesBatch"]] == ids

    small = await client.post("/graphql", json={"query": "{ namespaces }"}, headers=headers)
    assert (await small.json()) == {"data": {"namespaces": ["alice"]}} and "Content-Encoding" not in small.headers

    plain = await client.post("/graphql", json={"query": BATCH, "variables": {"ids": ids, "name": "loss", "n": 200}},
                              headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and (await plain.json()) == body


async def test_big_bodies_are_compressed_off_the_loop(client, monkeypatch):
    """Past THREAD_BYTES the compressor runs in a worker thread, never on the server's loop."""
    import threading

    threads = []
    real = compression.ENCODINGS["gzip"]
    monkeypatch.setitem(compression.ENCODINGS, "gzip", lambda body: threads.append(threading.current_thread()) or real(body))
    ids = await seeded_runs(client, 3, points=2000)
    variables = {"ids": ids, "name": "loss", "n": 2000}
    answer = await client.post("/graphql", json={"query": BATCH, "variables": variables}, headers={"Accept-Encoding": "gzip"})
    assert answer.status == 200 and answer.headers["Content-Encoding"] == "gzip"
    assert int(answer.headers["Content-Length"]) < compression.THREAD_BYTES < len(orjson.dumps(await answer.json()))
    assert threads and threading.main_thread() not in threads


@pytest.mark.parametrize("x", ["step", "time"])
async def test_base64_series_carry_the_json_answer(client, x):
    """encoding: "base64" gives the same steps, times and (to float32) values as the JSON lists; min/max/count too."""
    ids = await seeded_runs(client, 3, points=700)
    _, plain = await gql(client, BATCH, {"ids": ids + ["0" * 32], "name": "loss", "n": 50, "x": x})
    status, packed = await gql(client, BATCH, {"ids": ids + ["0" * 32], "name": "loss", "n": 50, "x": x, "e": "base64"})
    assert status == 200, packed
    assert packed["data"]["seriesBatch"][-1] is None
    for a, b in zip(plain["data"]["seriesBatch"][:-1], packed["data"]["seriesBatch"][:-1]):
        assert b["steps"].startswith("i4:") and b["values"].startswith("f4:")
        assert decoded(b["steps"]) == a["steps"]
        assert np.allclose(decoded(b["values"]), a["values"], rtol=1e-6)
        assert {k: b[k] for k in ("experimentId", "count", "min", "max")} == {k: a[k] for k in ("experimentId", "count", "min", "max")}
        if x == "time":
            assert b["times"].startswith("f8:") and decoded(b["times"]) == a["times"]
        else:
            assert a["times"] is b["times"] is None


async def test_base64_keeps_nulls_big_values_and_stepless_series(client):
    """NaN/Infinity (null in JSON) decode to null; a value past float32's range switches values to f8; a series
    logged without steps has f8 NaN steps (null) and still gets times."""
    experiment_id = await new_experiment(client, "odd")
    run_id = await new_run(client, experiment_id)
    values = [1.0, math.nan, math.inf, 1e300, 2.5]
    batch = metric_batch(0, 1, range(5), run_id=run_id, value=lambda s: values[s])
    for event in batch["events"]:
        event["metrics"]["loss"] = {"nan": "NaN", "inf": "Infinity"}.get(str(event["metrics"]["loss"]), event["metrics"]["loss"])
    assert (await post_batch(client, experiment_id, batch)).status == 200
    stepless = await new_experiment(client, "stepless")
    batch = metric_batch(0, 1, range(4), run_id=await new_run(client, stepless), value=lambda s: s * 2.0)
    for event in batch["events"]:
        del event["step"]
    assert (await post_batch(client, stepless, batch)).status == 200

    status, body = await gql(client, BATCH, {"ids": [experiment_id, stepless], "name": "loss", "x": "time", "e": "base64"})
    assert status == 200, body
    odd, flat = body["data"]["seriesBatch"]
    assert odd["values"].startswith("f8:") and decoded(odd["values"]) == [1.0, None, None, 1e300, 2.5]
    assert flat["steps"].startswith("f8:") and decoded(flat["steps"]) == [None] * 4
    assert decoded(flat["values"]) == [0.0, 2.0, 4.0, 6.0]
    assert decoded(flat["times"]) == [1000.0, 1001.0, 1002.0, 1003.0]


async def test_unknown_encoding_is_refused_by_name(client):
    ids = await seeded_runs(client, 1, points=10)
    status, body = await gql(client, BATCH, {"ids": ids, "name": "loss", "e": "hex"})
    assert "encoding must be one of json, base64 (got 'hex')" in body["errors"][0]["message"]


def test_gzip_is_a_plain_gzip_stream():
    assert gzip.decompress(compression.ENCODINGS["gzip"](b"x" * 5000)) == b"x" * 5000
    assert zstandard.ZstdDecompressor().decompressobj().decompress(compression.ENCODINGS["zstd"](b"y" * 5000)) == b"y" * 5000
