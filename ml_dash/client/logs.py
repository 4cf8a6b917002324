"""``exp.logs``: structured messages with a level and a context."""
from __future__ import annotations

from time import time as _time
from typing import Any

from ml_dash.client.events import record_event
from ml_dash.client.values import to_jsonable
from ml_dash.format.jsonl import read_jsonl
from ml_dash.format.layout import stream_path
from ml_dash.client.pipeline.process import PIPELINE

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SCALARS = (str, int, float, bool, type(None))


class LogManager:
    def __init__(self, exp: Any, store_key: int, directory: str) -> None:
        self._exp = exp
        self._key = store_key
        self._directory = directory

    def log(self, /, message: str, level: str = "INFO", **context: Any) -> None:
        """Append one log line; ``context`` values must be JSON-able (numbers, strings, lists, dicts, arrays)."""
        if not self._exp.in_run:
            self._exp.ensure_run("logs.log")
        if not isinstance(message, str):
            raise TypeError(f"logs.log: message must be a str, got {type(message).__name__}")
        level_name = level.upper() if isinstance(level, str) else level
        if level_name not in LEVELS:
            raise ValueError(f"logs.log: level must be one of {', '.join(LEVELS)}; got {level!r}")
        deferred: list = []  # tensors: read by the writer, never here (that could wait on a GPU)
        for k, v in context.items():
            if type(v) not in _SCALARS or (type(v) is float and v - v != 0.0):
                context[k] = to_jsonable(v, "logs.log", k, deferred)
        record = {"timestamp": _time(), "level": level_name, "message": message, "context": context}
        PIPELINE.queue.append(record_event(self._key, "logs", record, bool(deferred)))
        if len(PIPELINE.queue) >= PIPELINE.threshold:
            PIPELINE.slow_path()

    def info(self, /, message: str, **context: Any) -> None:
        self.log(message, "INFO", **context)

    def warning(self, /, message: str, **context: Any) -> None:
        self.log(message, "WARNING", **context)

    def error(self, /, message: str, **context: Any) -> None:
        self.log(message, "ERROR", **context)

    def debug(self, /, message: str, **context: Any) -> None:
        self.log(message, "DEBUG", **context)

    def read(self) -> list[dict]:
        """Every log line so far, oldest first."""
        self._exp.flush()
        return read_jsonl(stream_path(self._directory, "logs"))
