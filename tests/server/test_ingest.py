"""Batch validation without a server: the fast paths give exactly what the full checks give."""
from __future__ import annotations

import copy
import math

import orjson
import pytest

from ml_dash.server.ingest import Validator

VALIDATOR = Validator(max_name_length=16, max_events=1000)


def batch(events=None, lines=None) -> dict:
    body = {"stream": "metrics", "stream_id": "s", "start": 0}
    if lines is not None:
        body.update(end=len(lines), lines=lines)
    else:
        body.update(end=10, events=events)
    return VALIDATOR.batch(body)["events"]


def test_every_event_shape_is_normalised_like_the_full_check():
    """Plain events pass as they are; extra keys, int or missing fields, big ints and NaN text are normalised."""
    events = [
        {"timestamp": 1.5, "step": 1, "metrics": {"loss": 0.5, "ok": True, "n": 3, "none": None}},
        {"timestamp": 2.0, "step": None, "metrics": {"loss": 0.25}, "extra": "dropped"},
        {"timestamp": 3, "step": 2, "metrics": {"loss": 1.0}},
        {"timestamp": 4.0, "metrics": {"loss": 1.0}},
        {"timestamp": 5.0, "step": 3, "metrics": {"big": 2**70, "nan": "NaN", "inf": "-Infinity"}},
    ]
    out = batch(events)
    assert out[0] == {"timestamp": 1.5, "step": 1, "metrics": {"loss": 0.5, "ok": True, "n": 3, "none": None}}
    assert out[1] == {"timestamp": 2.0, "step": None, "metrics": {"loss": 0.25}}
    assert out[2] == {"timestamp": 3, "step": 2, "metrics": {"loss": 1.0}}
    assert out[3] == {"timestamp": 4.0, "step": None, "metrics": {"loss": 1.0}}
    assert out[4]["metrics"]["big"] == float(2**70) and math.isnan(out[4]["metrics"]["nan"])
    assert out[4]["metrics"]["inf"] == -math.inf


@pytest.mark.parametrize("event, message", [
    ({"timestamp": 1.0, "step": True, "metrics": {"a": 1.0}}, "step"),
    ({"timestamp": 1.0, "step": 2**63, "metrics": {"a": 1.0}}, "step"),
    ({"timestamp": 1.0, "step": 1, "metrics": {"a": "text"}}, "metric 'a'"),
    ({"timestamp": 1.0, "step": 1, "metrics": {"x" * 17: 1.0}}, "metric name"),
    ({"timestamp": 1.0, "step": 1, "metrics": {"": 1.0}}, "metric name"),
    ({"timestamp": 1.0, "step": 1, "metrics": [1.0]}, "'metrics'"),
    ({"timestamp": "now", "step": 1, "metrics": {"a": 1.0}}, "timestamp"),
])
def test_bad_events_are_refused_naming_the_field(event, message):
    """Whatever the fast path does not accept still meets the full check and its error: the record is rejected
    (listed with its index), the good records around it are kept."""
    good = {"timestamp": 1.0, "step": 1, "metrics": {"a": 1.0}}
    checked = VALIDATOR.batch({"stream": "metrics", "stream_id": "s", "start": 0, "end": 10,
                               "events": [dict(good), event, dict(good)]})
    assert checked["events"] == [good, good]
    assert [r["index"] for r in checked["rejected"]] == [1] and message in checked["rejected"][0]["error"]


def test_lines_parse_the_same_with_and_without_blank_or_torn_lines():
    """One parse for clean JSONL; blank, torn and non-object lines fall back to line by line, same records."""
    records = [{"timestamp": float(i), "step": i, "metrics": {"loss": i / 4}} for i in range(50)]
    clean = b"".join(orjson.dumps(r) + b"\n" for r in records)
    assert batch(lines=clean) == records
    messy = clean[:200] + b"\n" + clean[200:] + b'{"timestamp": 1.0, "st\n[1]\n7\n'
    # The inserted newline cuts a line in two halves, both dropped as torn; everything else survives.
    parsed = batch(lines=messy)
    assert all(r in records for r in parsed) and len(parsed) == len(records) - 1
    assert batch(lines=b"") == []


def test_the_columnar_pass_stores_what_validating_each_event_stores():
    """``batch(columns=True)`` (the server's path) gives the chunks, last points and rejections that validating the
    events and grouping them (``MetricBatch.of_events``) give, for plain, mixed, normalised and refused records."""
    from ml_dash.format.limits import MAX_METRIC_NAMES_PER_BATCH
    from ml_dash.server.series.batch import MetricBatch

    events = [
        {"timestamp": 1.5, "step": 1, "metrics": {"loss": 0.5, "ok": True, "n": 3, "none": None}},
        {"timestamp": 2.0, "step": None, "metrics": {"loss": 0.25}, "extra": "dropped"},
        {"timestamp": 3, "step": 2, "metrics": {"loss": 1.0, "n": 2**70}},
        {"timestamp": 4.0, "metrics": {"loss": "NaN", "ok": False}},
        {"timestamp": 5.0, "step": 3, "metrics": {"loss": "text"}},
        [1, 2],
        {"timestamp": 6.0, "step": 4, "metrics": {"loss": float("nan"), "inf": "-Infinity"}},
        {"timestamp": 7.0, "step": 5, "metrics": {f"m{i}": 1.0 for i in range(MAX_METRIC_NAMES_PER_BATCH)}},
        {"timestamp": 8.0, "step": 6, "metrics": {"loss": 2.0}},
    ] + [{"timestamp": 9.0 + i, "step": 7 + i, "metrics": {"loss": i / 3, "acc": i}} for i in range(600)]
    body = {"stream": "metrics", "stream_id": "s", "start": 0, "end": 10}
    plain = VALIDATOR.batch({**body, "events": [dict(e) if isinstance(e, dict) else e for e in events]})
    columns = VALIDATOR.batch({**body, "events": events}, columns=True)
    assert columns["rejected"] == plain["rejected"] and [r["index"] for r in plain["rejected"]] == [4, 5, 7]
    assert columns["events"] == MetricBatch.of_events(plain["events"])
    assert columns["events"].count == len(events) - 3


@pytest.mark.parametrize("case", ["plain", "int values", "huge int", "a name missing", "an extra name", "null step",
                                  "int time", "nan value", "bool value", "empty"])
def test_uniform_batches_store_what_validating_each_event_stores(case):
    """Batches of one shape (the columnar shortcut) and near misses (the per-event loop) give what validating
    every event and grouping them gives."""
    from ml_dash.server.series.batch import MetricBatch

    events = [{"timestamp": 10.0 + i, "step": i, "metrics": {"loss": 1 / (i + 1), "acc": i * 0.5}} for i in range(300)]
    edit = {"plain": lambda e: None, "int values": lambda e: e["metrics"].update(acc=7),
            "huge int": lambda e: e["metrics"].update(acc=2**64), "a name missing": lambda e: e["metrics"].pop("acc"),
            "an extra name": lambda e: e["metrics"].update(more=1.0), "null step": lambda e: e.update(step=None),
            "int time": lambda e: e.update(timestamp=11), "nan value": lambda e: e["metrics"].update(loss="NaN"),
            "bool value": lambda e: e["metrics"].update(acc=True), "empty": lambda e: e["metrics"].clear()}[case]
    edit(events[150])
    body = {"stream": "metrics", "stream_id": "s", "start": 0, "end": 10}
    plain = VALIDATOR.batch({**body, "events": copy.deepcopy(events)})
    columns = VALIDATOR.batch({**body, "events": events}, columns=True)
    assert columns["rejected"] == plain["rejected"] == []
    assert columns["events"] == MetricBatch.of_events(plain["events"])


def test_lines_parse_the_same_in_pieces(monkeypatch):
    """A body parsed a piece of lines at a time (PARSE_PIECE) gives the records one parse gives, whatever falls on
    a piece's edge: long lines, blank lines, a torn line."""
    from ml_dash.format import jsonl
    from ml_dash.server import ingest

    records = [{"timestamp": float(i), "step": i, "metrics": {"loss": i / 4, "name": "x" * (i % 7) * 40}}
               for i in range(400)]
    clean = b"".join(orjson.dumps(r) + b"\n" for r in records)
    messy = clean[:5000] + b"\n\n" + clean[5000:9000] + b'{"torn": \n' + clean[9000:]
    whole = {name: ingest.parse_lines(body, len(body)) for name, body in (("clean", clean), ("messy", messy))}
    assert whole["clean"] == records and all(r in records for r in whole["messy"])
    assert len(records) - 2 <= len(whole["messy"]) < len(records)  # the lines the insertions cut are dropped
    for piece in (64, 100, 333, 4096):
        monkeypatch.setattr(jsonl, "PARSE_PIECE", piece)
        assert ingest.parse_lines(clean, len(clean)) == records
        assert ingest.parse_lines(messy, len(messy)) == whole["messy"]


def test_a_batch_parses_its_lines_as_a_reader_of_the_file_does(tmp_path):
    """The server's ``lines`` and the client's readers share format.jsonl's rules: the same records from the same
    bytes (blank, non-object and torn lines skipped), and an unterminated tail is no record for either."""
    from ml_dash.format.jsonl import parse_lines, read_jsonl
    from ml_dash.server import ingest

    body = b'{"a": 1}\n\n[1, 2]\n{"torn": \n"text"\n{"b": 2}\n'
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(body + b'{"still being wri')
    assert ingest.parse_lines(body, len(body)) == read_jsonl(str(path)) == [{"a": 1}, {"b": 2}]
    assert parse_lines(body + b'{"c": 3}') == [{"a": 1}, {"b": 2}]
