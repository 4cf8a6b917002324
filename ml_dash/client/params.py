"""``exp.params``: parameter operations appended to parameters.jsonl; ``read()`` replays them."""
from __future__ import annotations

from time import time as _time
from typing import Any

from ml_dash.client.events import record_event
from ml_dash.client.values import to_jsonable
from ml_dash.format.jsonl import read_jsonl
from ml_dash.format.layout import stream_path
from ml_dash.format.params import check_nesting, replay
from ml_dash.client.pipeline.process import PIPELINE


class ParameterManager:
    """Hyperparameters and configuration."""

    def __init__(self, exp: Any, store_key: int, directory: str) -> None:
        self._exp = exp
        self._key = store_key
        self._directory = directory

    def _push(self, operation: str, where: str, path: str, field: str, value: Any, **head: Any) -> None:
        """Queue one operation record whose ``field`` holds ``value`` converted to JSON types (errors name ``path``).

        Converting here copies the value, so later mutation of the caller's dicts cannot change the log. Tensors in
        it are cloned, not read (that could wait on a GPU): the record's flag tells the writer to read them."""
        deferred: list = []
        record = {"timestamp": _time(), "operation": operation, **head, field: to_jsonable(value, where, path, deferred)}
        try:
            check_nesting(record)  # the server refuses what would nest the replayed parameters too deep
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        PIPELINE.queue.append(record_event(self._key, "parameters", record, bool(deferred)))
        if len(PIPELINE.queue) >= PIPELINE.threshold:
            PIPELINE.slow_path()

    def set(self, /, **params: Any) -> None:
        """Replace all parameters."""
        self._push("set", "params.set", "params", "data", params)

    log = set

    def extend(self, /, **params: Any) -> None:
        """Deep-merge into the existing parameters."""
        self._push("extend", "params.extend", "params", "data", params)

    def update(self, key: str, value: Any) -> None:
        """Set one parameter; ``key`` may use dot notation (``"model.layers"``)."""
        if not isinstance(key, str) or not key or any(part == "" for part in key.split(".")):
            raise ValueError(f"params.update: key must be a non-empty dotted name, got {key!r}")
        self._push("update", "params.update", key, "value", value, key=key)

    def read(self) -> dict:
        """The current parameters, replayed from parameters.jsonl (so another process sees the same)."""
        self._exp.flush()
        return replay(read_jsonl(stream_path(self._directory, "parameters")))
