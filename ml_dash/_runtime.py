"""The one pipeline of this process, shared by every experiment in it."""
from __future__ import annotations

from ml_dash.pipeline.core import Pipeline
from ml_dash.sinks.jsonl import JsonlSink

SINK = JsonlSink()
PIPELINE = Pipeline(SINK)
SINK.on_error = PIPELINE.set_error
