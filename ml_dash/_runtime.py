"""The one pipeline of this process, shared by every experiment in it."""
from __future__ import annotations

from ._jsonl_sink import JsonlSink
from ._pipeline import Pipeline

SINK = JsonlSink()
PIPELINE = Pipeline(SINK)
SINK.on_error = PIPELINE.set_error
