"""The composition root: gives this process's pipeline its sink and tells experiments how to reach a server.

Imported by ``ml_dash/__init__`` (so by every import of ml_dash). It is the only client module that names both a
layer below the API (the JSONL sink) and one above it (the uploader): the API modules import neither.
"""
from __future__ import annotations

from typing import Any

from ml_dash.client import experiment as _experiment
from ml_dash.client.pipeline.process import PIPELINE
from ml_dash.client.sinks.jsonl import JsonlSink

SINK = JsonlSink()
SINK.on_error = PIPELINE.set_error
PIPELINE.set_sink(SINK)


def _attach_remote(exp: Any) -> Any:
    from ml_dash.client.upload.uploader import (
        attach_uploader,  # aiohttp and the upload thread only for remote runs
    )

    return attach_uploader(exp, PIPELINE, SINK)


_experiment.attach_remote = _attach_remote
