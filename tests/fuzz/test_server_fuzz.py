"""Fuzzing a real server (SQLite): random GraphQL queries and random ingest batches never get a 500, and the
parameters the server replays agree with the client's replay."""
from __future__ import annotations

import glob
import json
import os
import string
import tempfile
import urllib.error
import urllib.request
import uuid
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from ml_dash import Experiment
from ml_dash.format.jsonl import read_jsonl
from ml_dash.format.params import replay
from ml_dash.server.http.graphql import SDL
from tests.fuzz.conftest import examples

INGEST_ANSWERS = {200, 400, 403, 404, 409, 413}


def request(base: str, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(base + path, data=body, method=method,
                                 headers={"Content-Type": content_type} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_json(base: str, path: str, body: Any) -> tuple[int, Any]:
    status, raw = request(base, "POST", path, orjson.dumps(body))
    return status, orjson.loads(raw)


def healthy(base: str) -> bool:
    return request(base, "GET", "/health")[0] == 200


@pytest.fixture(scope="module")
def seeded(fuzz_server) -> tuple[str, str]:
    """The server with one experiment holding a run, metrics, parameters and logs; its id."""
    status, body = post_json(fuzz_server, "/api/v1/experiments", {"namespace": "fuzz", "workspace": "w", "prefix": "s"})
    assert status == 200, body
    experiment_id = body["experiment_id"]
    run_id = post_json(fuzz_server, f"/api/v1/experiments/{experiment_id}/runs", {"client_run_id": "r"})[1]["run_id"]
    for stream, events in [
        ("metrics", [{"timestamp": 1.0 + i, "step": i, "metrics": {"loss": 1.0 / (i + 1), "acc": "NaN"}}
                     for i in range(20)]),
        ("parameters", [{"timestamp": 1.0, "operation": "set", "data": {"lr": 0.1, "model": {"depth": 3}}}]),
        ("logs", [{"timestamp": 1.0, "level": "INFO", "message": "hello", "context": {"a": [1, 2]}}]),
    ]:
        status, body = post_json(fuzz_server, f"/api/v1/experiments/{experiment_id}/batches",
                                 {"run_id": run_id, "stream": stream, "stream_id": f"seed:{stream}", "start": 0,
                                  "end": 10, "events": events})
        assert status == 200, body
    return fuzz_server, experiment_id


# --- (a) GraphQL ----------------------------------------------------------------------------------------------------

def check_graphql(base: str, body: bytes, content_type: str = "application/json") -> None:
    status, raw = request(base, "POST", "/graphql", body, content_type)
    assert status != 500 and status < 500, (status, raw[:2000], body[:2000])
    json.loads(raw)  # JSON, whatever the status


@settings(max_examples=examples(60))
@example(query="{ experiments(limit: null, offset: null) { id } }", variables=None)  # was a 500 (found by this test)
@given(query=queries(SDL), variables=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(-2**63, 2**63 - 1))))
def test_random_graphql_queries_never_fail_the_server(seeded, query, variables):
    base, _ = seeded
    check_graphql(base, orjson.dumps({"query": query, "variables": variables}))


@settings(max_examples=examples(40))
@given(st.data())
def test_queries_of_the_seeded_experiment(seeded, data):
    base, experiment_id = seeded
    field = data.draw(st.sampled_from(["params", "metricNames", "lastMetrics", "runs { id status error }",
                                       "logs(level: $level, limit: $limit) { message context }",
                                       "metric(name: $name, maxPoints: $points, stepMin: $lo, stepMax: $hi) "
                                       "{ count steps values min max }", "files { path size }"]))
    query = (f"query Q($id: ID!, $level: String, $limit: Int, $name: String!, $points: Int, $lo: Float, $hi: Float) "
             f"{{ experiment(id: $id) {{ id {field} }} }}")
    numbers = st.one_of(st.none(), st.integers(-2**40, 2**40), st.floats(allow_nan=False), st.text(max_size=3))
    variables = {"id": data.draw(st.sampled_from([experiment_id, "nope", ""])),
                 "level": data.draw(st.one_of(st.none(), st.sampled_from(["info", "ERROR", "x"]))),
                 "limit": data.draw(numbers), "name": data.draw(st.sampled_from(["loss", "acc", "", "missing"])),
                 "points": data.draw(numbers), "lo": data.draw(numbers), "hi": data.draw(numbers)}
    check_graphql(base, orjson.dumps({"query": query, "variables": variables}))


@settings(max_examples=examples(40))
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_junk_graphql_bodies_never_fail_the_server(seeded, junk):
    base, _ = seeded
    if isinstance(junk, str):
        check_graphql(base, orjson.dumps({"query": junk}))
        check_graphql(base, junk.encode("utf-8", "surrogatepass"), "application/graphql")
    else:
        check_graphql(base, junk)


def test_graphql_fuzzing_left_the_server_healthy(seeded):
    assert healthy(seeded[0])


# --- (b) ingest -----------------------------------------------------------------------------------------------------

ODD_NAMES = st.one_of(st.text(max_size=8), st.text(min_size=250, max_size=300), st.just("a\x00b"), st.just(""))
NUMBERS = st.one_of(st.integers(-2**63, 2**64 - 1), st.floats(), st.sampled_from(["NaN", "Infinity", "-Infinity"]))
junk = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=10), st.binary(max_size=5)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3)), max_leaves=10)
metric_event = st.fixed_dictionaries(
    {"timestamp": st.one_of(NUMBERS, junk), "step": st.one_of(st.none(), NUMBERS, junk),
     "metrics": st.one_of(st.dictionaries(ODD_NAMES, st.one_of(NUMBERS, st.booleans(), st.none(), junk), max_size=4),
                          junk)})
parameter_event = st.fixed_dictionaries(
    {"timestamp": st.one_of(NUMBERS, junk), "operation": st.one_of(st.sampled_from(["set", "extend", "update"]), junk)},
    optional={"data": st.one_of(st.dictionaries(ODD_NAMES, junk, max_size=3), junk), "key": st.one_of(ODD_NAMES, junk),
              "value": junk})
log_event = st.fixed_dictionaries(
    {"timestamp": st.one_of(NUMBERS, junk), "level": st.one_of(st.sampled_from(["INFO", "debug", "x"]), junk),
     "message": st.one_of(st.text(max_size=20), junk), "context": st.one_of(st.dictionaries(ODD_NAMES, junk), junk)})
events = st.lists(st.one_of(metric_event, parameter_event, log_event, junk), max_size=6)


@st.composite
def batches(draw) -> dict:
    batch: dict[str, Any] = {
        "run_id": draw(st.one_of(st.none(), st.text(max_size=5), junk)),
        "stream": draw(st.one_of(st.sampled_from(["metrics", "parameters", "logs"]), junk)),
        "stream_id": draw(st.one_of(st.just(f"fuzz:{uuid.uuid4().hex}"), ODD_NAMES, junk)),
        "start": draw(st.one_of(st.just(0), NUMBERS, junk)),
        "end": draw(st.one_of(st.integers(0, 10**6), NUMBERS, junk)),
        "events": draw(st.one_of(events, junk)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(batch)), max_size=2, unique=True)):
        del batch[key]
    return draw(st.one_of(st.just(batch), junk))


def encode(body: Any, how: str) -> bytes | None:
    try:
        if how == "msgpack":
            return msgpack.packb(body)
        return json.dumps(body, default=lambda b: b.hex()).encode("utf-8", "surrogatepass")
    except (OverflowError, TypeError, ValueError):
        return None


@settings(max_examples=examples(100))
@given(batch=batches(), how=st.sampled_from(["msgpack", "json"]))
def test_random_batches_never_fail_the_server(seeded, batch, how):
    base, experiment_id = seeded
    body = encode(batch, how)
    if body is None:
        return
    status, raw = request(base, "POST", f"/api/v1/experiments/{experiment_id}/batches", body, f"application/{how}")
    assert status in INGEST_ANSWERS, (status, raw[:2000], batch)
    json.loads(raw)


EVENTS_OF = {"metrics": metric_event, "parameters": parameter_event, "logs": log_event}


@settings(max_examples=examples(100))
@given(stream=st.sampled_from(sorted(EVENTS_OF)), data=st.data(), how=st.sampled_from(["msgpack", "json"]))
def test_fuzzed_events_in_valid_batches_never_fail_the_server(seeded, stream, data, how):
    """A well-formed envelope (a new stream at offset 0), so that the events themselves reach validation."""
    base, experiment_id = seeded
    records = data.draw(st.lists(st.one_of(EVENTS_OF[stream], junk), min_size=1, max_size=6), "events")
    body = encode({"run_id": None, "stream": stream, "stream_id": f"fuzz:{uuid.uuid4().hex}", "start": 0,
                   "end": data.draw(st.integers(1, 10**6), "end"), "events": records}, how)
    if body is None:
        return
    status, raw = request(base, "POST", f"/api/v1/experiments/{experiment_id}/batches", body, f"application/{how}")
    assert status in INGEST_ANSWERS, (status, raw[:2000], records)
    json.loads(raw)


def test_ingest_fuzzing_left_the_server_healthy(seeded):
    base, experiment_id = seeded
    assert healthy(base)
    assert request(base, "GET", f"/api/v1/experiments/{experiment_id}/parameters")[0] == 200


# --- (c) parameters: the client's replay and the server's agree ---------------------------------------------------

KEYS = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=6).filter(lambda k: k != "self")
# No NUL in strings here: the server stores NUL in free text as U+FFFD on purpose (PostgreSQL cannot hold NUL; see
# docs/protocol.md), so the two views differ by design there; tests/server/test_ingest_limits.py covers that mapping.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), st.floats(), TEXT),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
                      max_leaves=8)
OPS = st.lists(st.one_of(st.tuples(st.sampled_from(["set", "extend"]), st.dictionaries(KEYS, VALUES, max_size=3)),
                         st.tuples(st.just("update"), st.tuples(st.lists(KEYS, min_size=1, max_size=3).map(".".join),
                                                                VALUES))), min_size=1, max_size=8)


@settings(max_examples=examples(30))
@given(OPS)
def test_server_parameters_agree_with_the_client_replay(fuzz_server, ops):
    with tempfile.TemporaryDirectory() as root:
        exp = Experiment(namespace="fuzz", workspace="params", prefix="p", local_root=root)
        for operation, argument in ops:
            if operation == "update":
                exp.params.update(*argument)
            else:
                getattr(exp.params, operation)(**argument)
        client_view = exp.params.read()
        exp.complete()
        path = glob.glob(os.path.join(root, "**", "parameters.jsonl"), recursive=True)[0]
        with open(path, "rb") as f:
            lines = f.read()
        records = read_jsonl(path)
    assert replay(records) == client_view
    experiment_id = post_json(fuzz_server, "/api/v1/experiments",
                              {"namespace": "fuzz", "workspace": "params", "prefix": uuid.uuid4().hex})[1]["experiment_id"]
    for body in ({"events": records}, {"lines": lines}):
        batch = {"run_id": None, "stream": "parameters", "stream_id": f"c:{uuid.uuid4().hex}", "start": 0,
                 "end": len(lines), **body}
        status, raw = request(fuzz_server, "POST", f"/api/v1/experiments/{experiment_id}/batches",
                              msgpack.packb(batch), "application/msgpack")
        assert status == 200, raw
    status, raw = request(fuzz_server, "GET", f"/api/v1/experiments/{experiment_id}/parameters")
    assert status == 200
    # the same records twice (events, then lines): replaying them twice gives the same result as once
    assert orjson.loads(raw) == replay(records + records) == client_view
