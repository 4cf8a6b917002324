"""The JSONL sink's export: metric rows inline, every tuple kind through its handler, an unknown kind dropped loudly."""
import logging

import orjson

from ml_dash.client.events import (
    STEP_KEY,
    aggregate_event,
    record_event,
    register_metric_source,
    register_store,
)
from ml_dash.client.sinks.jsonl import JsonlSink


def _read(path):
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def test_each_kind_reaches_its_file_and_an_unknown_kind_is_reported_not_written(tmp_path, caplog):
    key = register_store(str(tmp_path))
    source = register_metric_source(key, None, False)
    sink = JsonlSink()
    batch = [
        {"loss": 0.5, source: 10.0, STEP_KEY: 1},  # a metric row (the inline path)
        record_event(key, "logs", {"message": "hi"}, False),
        aggregate_event(key, 11.0, 2, [(None, {"acc": 1.0}), (None, {"acc": 3.0})], "mean", {}, None),
        (key, 99, "logs", {"message": "never"}, False, None),  # a kind no handler knows
        record_event(key, "parameters", {"operation": "set", "data": {"lr": 0.1}}, False),
    ]
    with caplog.at_level(logging.ERROR, logger="ml_dash"):
        sink.export(batch)
    sink.close_store(key)
    assert _read(tmp_path / "metrics.jsonl") == [{"timestamp": 10.0, "step": 1, "metrics": {"loss": 0.5}},
                                                  {"timestamp": 11.0, "step": 2, "metrics": {"acc": 2.0}}]
    assert _read(tmp_path / "logs.jsonl") == [{"message": "hi"}]
    assert _read(tmp_path / "parameters.jsonl") == [{"operation": "set", "data": {"lr": 0.1}}]
    assert any("could not be encoded" in r.getMessage() for r in caplog.records)
