"""Request bodies: decode msgpack/JSON (optionally gzip) within limits, and validate batch events.

Everything here turns bad input into ``BadRequest``/``PayloadTooLarge`` so a client never sees a 500. Decoding uses
msgpack and orjson only: nothing received is ever unpickled or otherwise executed.
"""
from __future__ import annotations

from typing import Any

import msgpack
import orjson

from ml_dash.format.layout import RUN_STATUSES, STREAMS
from ml_dash.format.limits import MAX_NESTING
from ml_dash.format.values import (
    INT64_END,
    INT64_MIN,
    TEXT_TO_NONFINITE,
    UINT64_END,
    nonfinite_text,
)
from ml_dash.server.errors import BadRequest, PayloadTooLarge

LOG_LEVELS_MAX = 32
_INT64 = (INT64_MIN, INT64_END)
_METRIC_KEYS = {"timestamp", "step", "metrics"}


def decode_body(raw: bytes, content_type: str) -> Any:
    """Bytes of a request body to Python values.

    ``Content-Encoding: gzip`` is already undone by aiohttp's parser, which also applies the body-size limit to the
    inflated bytes, so a small gzip bomb ends in a 413 rather than filling memory.
    """
    if not raw:
        raise BadRequest("empty request body")
    if content_type in ("application/msgpack", "application/x-msgpack"):
        try:
            # Ext types (including msgpack's timestamp) come back as objects the validators reject as wrong types.
            return msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
        except (ValueError, msgpack.UnpackException, TypeError) as exc:
            raise BadRequest(f"malformed msgpack body: {exc}") from None
    if content_type in ("application/json", ""):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON body: {exc}") from None
    raise BadRequest(f"unsupported Content-Type {content_type!r}; use application/msgpack or application/json")


class Validator:
    """Field checks with the server's limits; each error message names the offending field."""

    def __init__(self, max_name_length: int, max_events: int) -> None:
        self.max_name_length = max_name_length
        self.max_events = max_events

    def obj(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise BadRequest(f"body must be an object, got {type(body).__name__}")
        return body

    def name(self, body: dict, key: str, *, required: bool = True, default: str | None = None) -> str | None:
        value = body.get(key)
        if value is None:
            if required and default is None:
                raise BadRequest(f"missing field {key!r}")
            return default
        if not isinstance(value, str):
            raise BadRequest(f"field {key!r} must be a string, got {type(value).__name__}")
        if len(value) > self.max_name_length:
            raise BadRequest(f"field {key!r} is longer than {self.max_name_length} characters")
        if required and not value:
            raise BadRequest(f"field {key!r} must not be empty")
        return value

    @staticmethod
    def text(body: dict, key: str) -> str | None:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"field {key!r} must be a string, got {type(value).__name__}")
        return value

    @staticmethod
    def number(body: dict, key: str, *, required: bool = False) -> float | None:
        value = body.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"field {key!r} must be a number")
        # msgpack carries integers up to 2**64-1; SQL integers stop at 2**63-1, and these are times: store a float.
        return value if isinstance(value, float) or _INT64[0] <= value < _INT64[1] else float(value)

    @staticmethod
    def offset(body: dict, key: str) -> int:
        value = body.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _INT64[1]:
            raise BadRequest(f"field {key!r} must be a non-negative integer")
        return value

    def status(self, body: dict) -> str:
        value = body.get("status")
        if value not in RUN_STATUSES:
            raise BadRequest(f"field 'status' must be one of {', '.join(RUN_STATUSES)}")
        return value

    def batch(self, body: Any) -> dict:
        """Validate a batch body; returns it with events normalised for storage."""
        body = self.obj(body)
        stream = body.get("stream")
        if stream not in STREAMS:
            raise BadRequest(f"field 'stream' must be one of {', '.join(STREAMS)}")
        start, end = self.offset(body, "start"), self.offset(body, "end")
        if end < start:
            raise BadRequest(f"'end' ({end}) is before 'start' ({start})")
        events = body.get("events")
        if "lines" in body:  # the client's JSONL bytes as they are: [start, end) of its file
            if events is not None:
                raise BadRequest("give either 'events' or 'lines', not both")
            events = parse_lines(body["lines"], end - start)
        if not isinstance(events, list):
            raise BadRequest("field 'events' must be a list")
        if events and end == start:
            # start would still equal acked afterwards, so every replay would store the events again.
            raise BadRequest("a batch with events must cover bytes: 'end' must be greater than 'start'")
        if len(events) > self.max_events:
            raise PayloadTooLarge(f"{len(events)} events in one batch; the limit is {self.max_events}")
        check = {"metrics": self._metric_event, "parameters": self._parameter_event, "logs": self._log_event}[stream]
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                raise BadRequest(f"events[{i}] must be an object")
            try:
                events[i] = check(event)
            except BadRequest as exc:
                raise BadRequest(f"events[{i}]: {exc.message}") from None
        return {"run_id": self.name(body, "run_id", required=False), "stream": stream,
                "stream_id": self.name(body, "stream_id"), "start": start, "end": end, "events": events}

    def _metric_event(self, event: dict) -> dict:
        # Fast path for the shape ml-dash clients write (float timestamp, int/null step, plain values): the event
        # is already what storage wants, so it is returned as it is. Anything else takes the full check below.
        if event.keys() == _METRIC_KEYS:
            step, metrics = event["step"], event["metrics"]
            if (type(event["timestamp"]) is float and type(metrics) is dict
                    and (step is None or (type(step) is int and _INT64[0] <= step < _INT64[1]))):
                limit = self.max_name_length
                for name, value in metrics.items():
                    kind = type(value)
                    if (type(name) is not str or not 0 < len(name) <= limit or not (
                            kind is float or kind is bool or value is None
                            or (kind is int and _INT64[0] <= value < _INT64[1]))):
                        break
                else:
                    return event
        return self._checked_metric_event(event)

    def _checked_metric_event(self, event: dict) -> dict:
        out = {"timestamp": self.number(event, "timestamp")}
        step = event.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not _INT64[0] <= step < _INT64[1]):
            raise BadRequest("'step' must be an integer or null")
        out["step"] = step
        metrics = event.get("metrics")
        if not isinstance(metrics, dict):
            raise BadRequest("'metrics' must be an object")
        clean = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or len(name) > self.max_name_length or not name:
                raise BadRequest(f"metric name {name[:40]!r}... must be 1 to {self.max_name_length} characters")
            clean[name] = metric_value(name, value)
        out["metrics"] = clean
        return out

    def _parameter_event(self, event: dict) -> dict:
        out = {"timestamp": self.number(event, "timestamp")}
        operation = event.get("operation")
        if operation not in ("set", "extend", "update"):
            raise BadRequest("'operation' must be set, extend or update")
        out["operation"] = operation
        if "key" in event:
            if operation != "update" or not isinstance(event["key"], str) or not event["key"]:
                raise BadRequest("'key' must be a non-empty string and only comes with operation 'update'")
            out["key"], out["value"] = event["key"], json_safe(event.get("value"))
        elif isinstance(event.get("data"), dict):
            out["data"] = json_safe(event["data"])
        else:
            raise BadRequest("'data' must be an object (or give 'key' and 'value' with operation 'update')")
        return out

    def _log_event(self, event: dict) -> dict:
        out = {"timestamp": self.number(event, "timestamp")}
        level = event.get("level", "INFO")
        if not isinstance(level, str) or len(level) > LOG_LEVELS_MAX:
            raise BadRequest(f"'level' must be a string of at most {LOG_LEVELS_MAX} characters")
        message = event.get("message")
        if not isinstance(message, str):
            raise BadRequest("'message' must be a string")
        context = event.get("context")
        if context is not None and not isinstance(context, dict):
            raise BadRequest("'context' must be an object or null")
        out.update(level=level.upper(), message=message, context=json_safe(context))
        return out


def parse_lines(lines: Any, size: int) -> list:
    """The records of a batch sent as JSONL bytes (msgpack bin). Exactly ``end - start`` bytes of whole lines; blank
    lines, lines that are not JSON objects and lines torn by a crash are skipped, as a reader of the file would."""
    if not isinstance(lines, bytes):
        raise BadRequest(f"field 'lines' must be bytes (msgpack bin), got {type(lines).__name__}")
    if len(lines) != size:
        raise BadRequest(f"field 'lines' holds {len(lines)} bytes but the batch covers {size} ('end' - 'start')")
    if lines and not lines.endswith(b"\n"):
        raise BadRequest("field 'lines' must end with a newline")
    if not lines:
        return []
    try:  # one parse for the whole batch when every line is a JSON object (the usual case)
        events = orjson.loads(b"[" + lines[:-1].replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:  # a blank or torn line: go line by line
        events = None
    if events is not None and all(type(event) is dict for event in events):
        return events
    events = []
    for line in lines.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            events.append(record)
    return events


def metric_value(name: str, value: Any) -> Any:
    """Accept float/int/bool/null and the JSONL spellings of non-finite floats; return the value to store."""
    if value is None or type(value) in (float, bool):
        return value
    if type(value) is int:
        return value if _INT64[0] <= value < _INT64[1] else float(value)  # SQL integers are 64-bit
    if type(value) is str and value in TEXT_TO_NONFINITE:
        return TEXT_TO_NONFINITE[value]
    raise BadRequest(f"metric {name!r} has a {type(value).__name__} value; expected a number, bool or null")


def json_safe(value: Any, depth: int = 0) -> Any:
    """Make a parameter/context value storable as JSON: non-finite floats become the JSONL spellings."""
    if isinstance(value, float):
        return value if value - value == 0.0 else nonfinite_text(value)
    if isinstance(value, (dict, list)) and depth >= MAX_NESTING:
        raise BadRequest(f"value is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise BadRequest("object keys must be strings")
        return {k: json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value if not isinstance(value, int) or _INT64[0] <= value < UINT64_END else float(value)
    raise BadRequest(f"value of type {type(value).__name__} cannot be stored")
