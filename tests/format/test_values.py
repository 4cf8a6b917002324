"""``format.values.json_safe``: the one last-resort converter, and what it makes of what orjson refuses."""
import math

import orjson

from ml_dash.format.values import INT64_MIN, UINT64_END, json_safe


def test_json_safe_converts_what_orjson_refuses_and_keeps_the_rest():
    value = {"big": 2**70, "low": INT64_MIN - 1, "edge": UINT64_END - 1, "min": INT64_MIN, "flag": True, "none": None,
             "nan": math.nan, "inf": -math.inf, "pair": (1, 2.5), 3: "int key", "obj": Exception("boom"),
             "nested": [{"x": [2**64]}]}
    safe = json_safe(value)
    assert safe["big"] == float(2**70) and type(safe["big"]) is float
    assert safe["low"] == float(INT64_MIN - 1)
    assert safe["edge"] == UINT64_END - 1 and safe["min"] == INT64_MIN  # within what orjson writes: kept exact
    assert safe["flag"] is True and safe["none"] is None
    assert (safe["nan"], safe["inf"]) == ("NaN", "-Infinity")  # the JSONL spellings, not null
    assert safe["pair"] == [1, 2.5] and safe["3"] == "int key" and safe["obj"] == "boom"
    assert safe["nested"] == [{"x": [float(2**64)]}]
    assert orjson.loads(orjson.dumps(safe)) == safe  # never raises, and round-trips


def test_a_record_orjson_refuses_is_written_through_json_safe(tmp_path):
    from ml_dash.client.events import record_event, register_store
    from ml_dash.client.sinks.jsonl import JsonlSink

    key = register_store(str(tmp_path))
    sink = JsonlSink()
    sink.export([record_event(key, "logs", {"message": "m", "context": {"n": 2**70}}, False)])
    sink.close_store(key)
    assert orjson.loads((tmp_path / "logs.jsonl").read_bytes()) == {"message": "m", "context": {"n": float(2**70)}}
