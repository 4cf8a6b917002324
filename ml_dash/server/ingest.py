"""Request bodies as bytes: decode msgpack/JSON within limits, validate bodies and batch events.

Functions on bytes and decoded values, no HTTP (``http/body.py`` reads a body within its size and time limits), so
the decoding pool's processes run them too. Everything here turns bad input into ``BadRequest``/``PayloadTooLarge``
so a client never sees a 500. Decoding uses msgpack and orjson only: nothing received is ever unpickled or otherwise
executed.
"""
from __future__ import annotations

from typing import Any

import msgpack
import orjson

from ml_dash.format.jsonl import parse_lines as parse_jsonl
from ml_dash.format.layout import CONSOLE_STREAMS, RUN_STATUSES, STREAMS, SYSTEM_PREFIX, rank_series
from ml_dash.format.limits import MAX_METRIC_NAMES_PER_BATCH, MAX_METRICS_PER_EVENT, MAX_NESTING, STEP_END, STEP_MIN
from ml_dash.format.names import check_segments
from ml_dash.format.params import check_nesting
from ml_dash.format.values import (
    INT64_END,
    INT64_MIN,
    TEXT_TO_NONFINITE,
    UINT64_END,
    nonfinite_text,
)
from ml_dash.server.errors import BadRequest, PayloadTooLarge
from ml_dash.server.ingest_columns import metric_batch
from ml_dash.server.media.ingest import media_events

LOG_LEVELS_MAX = 32
_INT64 = (INT64_MIN, INT64_END)
_STEPS = (STEP_MIN, STEP_END)  # the client refuses the same steps at its call (format.limits)
_METRIC_KEYS = {"timestamp", "step", "metrics"}
MAX_REJECTED_REPORTED = 100  # entries of an answer's "rejected" list; "rejected_count" always counts them all


def decode_body(raw: bytes, content_type: str, max_items: int = 2_000_000, max_json_bytes: int = 4 << 20) -> Any:
    """Bytes of a request body to Python values, within a budget of ``max_items`` decoded values.

    A msgpack body of 32 MiB of one-byte empty maps would otherwise become 32 million dicts (2.5 GB): every array and
    map counts its length (a map twice: keys and values) against ``max_items`` as it is decoded, and decoding stops
    with a 413 once the budget is spent, so the memory a body costs is bounded by the budget, not by its bytes. JSON
    has no such hook (orjson): a JSON body is limited to ``max_json_bytes`` instead (JSON is for curl users; the
    ml-dash client sends msgpack).
    """
    if not raw:
        raise BadRequest("empty request body")
    if content_type in ("application/msgpack", "application/x-msgpack"):
        budget = [max_items]

        def spend(container: Any) -> Any:
            budget[0] -= (2 * len(container) if type(container) is dict else len(container)) + 1
            if budget[0] < 0:
                raise PayloadTooLarge(f"the body holds more than {max_items} values; send smaller batches")
            return container

        try:
            # Ext types (including msgpack's timestamp) come back as objects the validators reject as wrong types.
            return msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True, list_hook=spend,
                                   object_hook=spend, max_array_len=max_items, max_map_len=max_items)
        except (ValueError, msgpack.UnpackException, TypeError) as exc:
            raise BadRequest(f"malformed msgpack body: {exc}") from None
    if content_type in ("application/json", ""):
        if len(raw) > max_json_bytes:
            raise PayloadTooLarge(f"a JSON body is limited to {max_json_bytes} bytes; send msgpack for larger ones")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON body: {exc}") from None
    raise BadRequest(f"unsupported Content-Type {content_type!r}; use application/msgpack or application/json")


class Validator:
    """Field checks with the server's limits; each error message names the offending field."""

    def __init__(self, max_name_length: int, max_events: int, max_items: int = 2_000_000) -> None:
        self.max_name_length = max_name_length
        self.max_events = max_events
        self.max_items = max_items  # the decoding budget, applied to a batch's JSONL bytes as well

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
        if "\x00" in value:
            raise BadRequest(f"field {key!r} must not contain NUL")
        return value

    def path_name(self, body: dict, key: str, *, nested: bool, required: bool = True) -> str:
        """A namespace, workspace, directory or prefix: the client's rules (``format.names.check_segments``: no
        absolute path, no ``.``/``..`` segment, no NUL or backslash; ``nested`` allows ``a/b``), normalised as the
        client normalises it, and at most ``max_name_length`` characters as a whole."""
        value = self.name(body, key, required=required)
        if not value:
            return ""
        try:
            return check_segments(key, value, allow_nested=nested)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    @staticmethod
    def text(body: dict, key: str) -> str | None:
        """Free text (a readme, an error): NUL, which PostgreSQL cannot store, becomes U+FFFD rather than a 400."""
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"field {key!r} must be a string, got {type(value).__name__}")
        return value.replace("\x00", "\ufffd") if value and "\x00" in value else value

    @staticmethod
    def number(body: dict, key: str, *, required: bool = False) -> float | None:
        value = body.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"field {key!r} must be a number")
        if isinstance(value, float) and value - value != 0.0:  # NaN, ±Infinity: no time, and GraphQL cannot carry it
            raise BadRequest(f"field {key!r} must be a finite number, got {value!r}")
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

    def batch(self, body: Any, columns: bool = False) -> dict:
        """Validate a batch body; returns it with events normalised for storage (``columns``: a metrics batch's as
        one ``MetricBatch``, encoded for the backends, see ``ingest_columns``)."""
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
            events = parse_lines(body["lines"], end - start, self.max_events, self.max_items)
        if not isinstance(events, list):
            raise BadRequest("field 'events' must be a list")
        if events and end == start:
            # start would still equal acked afterwards, so every replay would store the events again.
            raise BadRequest("a batch with events must cover bytes: 'end' must be greater than 'start'")
        if len(events) > self.max_events:
            raise PayloadTooLarge(f"{len(events)} events in one batch; the limit is {self.max_events}")
        rejected: list[dict] = []
        rank = body.get("rank", 0)
        if rank is None:
            rank = 0
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < 1 << 31:
            raise BadRequest("field 'rank' must be an int >= 0 (the rank of a distributed job that wrote the stream)")
        if rank and stream in ("metrics", "system"):
            # A rank > 0 keeps series of its own (format.layout.rank_series): rank 0's stay under the plain names.
            events = _ranked(events, rank) if stream == "metrics" else events
        if stream == "metrics":
            events = (metric_batch(events, self._metric_event, self.max_name_length, rejected) if columns
                      else self._metric_events(events, rejected))
        elif stream == "system":
            events = self._system_events(events, rejected)
            if rank:
                events = _ranked(events, rank)
        elif stream == "console":
            events = self._console_events(events, rank, rejected)
        elif stream == "media":  # index entries, each checked against its bytes in 'payload' (docs/media.md)
            events = media_events(events, body.get("payload", b""), self.max_name_length, rejected)
        else:
            check = self._parameter_event if stream == "parameters" else self._log_event
            for i, event in enumerate(events):
                if not isinstance(event, dict):
                    raise BadRequest(f"events[{i}] must be an object")
                try:
                    events[i] = check(event)
                except BadRequest as exc:
                    raise BadRequest(f"events[{i}]: {exc.message}") from None
        # A system batch is stored as a metrics batch (its rows under SYSTEM_PREFIX); its stream_id stays its own.
        out = {"run_id": self.name(body, "run_id", required=False),
               "stream": "metrics" if stream == "system" else stream,
               "stream_id": self.name(body, "stream_id"), "start": start, "end": end, "events": events,
               "rejected": rejected, "ahead": body.get("ahead") is True}
        if stream == "media":
            out["payload"] = body.get("payload", b"")
        return out

    def _console_events(self, events: list, rank: int, rejected: list[dict]) -> list:
        """Console rows (``{"timestamp", "stream", "text"}``, the text whole lines) as stored rows, one per line:
        ``(rank, timestamp, stream, line)``."""
        out = []
        for i, event in enumerate(events):
            if not isinstance(event, dict) or event.get("stream") not in CONSOLE_STREAMS \
                    or not isinstance(event.get("text"), str):
                rejected.append({"index": i, "error": "a console row must be an object with 'stream' (stdout or "
                                                      "stderr) and 'text' (a string)"})
                continue
            try:
                timestamp = self.number(event, "timestamp")
            except BadRequest as exc:
                rejected.append({"index": i, "error": exc.message})
                continue
            name, text = event["stream"], no_nul(event["text"])
            lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
            out.extend((rank, timestamp, name, line) for line in lines)
        return out

    def _metric_events(self, events: list, rejected: list[dict]) -> list:
        """The storable metric events. A bad one is left out and listed in ``rejected`` (``{"index", "error"}``)
        instead of failing the batch: the batch still covers its bytes, so one bad record never blocks a run."""
        names: set = set()
        kept = []
        for i, event in enumerate(events):
            try:
                if not isinstance(event, dict):
                    raise BadRequest("must be an object")
                event = self._metric_event(event)
                metrics = event["metrics"]
                if len(names) + len(metrics) > MAX_METRIC_NAMES_PER_BATCH:
                    new = metrics.keys() - names
                    if len(names) + len(new) > MAX_METRIC_NAMES_PER_BATCH:
                        raise BadRequest(f"more than {MAX_METRIC_NAMES_PER_BATCH} distinct metric names in one batch")
                    names.update(new)
                else:
                    names.update(metrics)
            except BadRequest as exc:
                rejected.append({"index": i, "error": exc.message})
                continue
            kept.append(event)
        return kept

    def _system_events(self, events: list, rejected: list[dict]) -> list:
        """System-metrics rows (docs/system-metrics.md): metric rows whose names get ``SYSTEM_PREFIX`` (the name limit
        leaves room for it)."""
        inner = Validator(self.max_name_length - len(SYSTEM_PREFIX), self.max_events, self.max_items)
        # Stored with the time as their step (epoch milliseconds): the rows have none, and so the series' step order,
        # block summaries and step-range reads are its time order, envelopes and time windows.
        return [{"timestamp": e["timestamp"], "step": _millis(e["timestamp"]),
                 "metrics": {SYSTEM_PREFIX + name: value for name, value in e["metrics"].items()}}
                for e in inner._metric_events(events, rejected)]

    def _metric_event(self, event: dict) -> dict:
        # Fast path for the shape ml-dash clients write (finite float timestamp, int/null step, plain values): the
        # event is already what storage wants, so it is returned as it is. Anything else takes the full check below.
        if event.keys() == _METRIC_KEYS:
            step, metrics, ts = event["step"], event["metrics"], event["timestamp"]
            if (type(ts) is float and ts - ts == 0.0 and type(metrics) is dict
                    and len(metrics) <= MAX_METRICS_PER_EVENT
                    and (step is None or (type(step) is int and _STEPS[0] <= step < _STEPS[1]))):
                limit = self.max_name_length
                for name, value in metrics.items():
                    kind = type(value)
                    if (type(name) is not str or not 0 < len(name) <= limit or "\x00" in name or not (
                            kind is float or kind is bool or value is None
                            or (kind is int and _INT64[0] <= value < _INT64[1]))):
                        break
                else:
                    return event
        return self._checked_metric_event(event)

    def _checked_metric_event(self, event: dict) -> dict:
        out = {"timestamp": self.number(event, "timestamp")}
        step = event.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)
                                 or not _STEPS[0] <= step < _STEPS[1]):
            raise BadRequest("'step' must be an integer or null")
        out["step"] = step
        metrics = event.get("metrics")
        if not isinstance(metrics, dict):
            raise BadRequest("'metrics' must be an object")
        if len(metrics) > MAX_METRICS_PER_EVENT:
            raise BadRequest(f"{len(metrics)} metrics in one event; the limit is {MAX_METRICS_PER_EVENT}")
        clean = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or len(name) > self.max_name_length or not name:
                raise BadRequest(f"metric name {str(name)[:40]!r}... must be 1 to {self.max_name_length} characters")
            if "\x00" in name:
                raise BadRequest(f"metric name {name[:40]!r} must not contain NUL")
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
            out["key"], out["value"] = no_nul(event["key"]), storable_json(event.get("value"))
        elif isinstance(event.get("data"), dict):
            out["data"] = storable_json(event["data"])
        else:
            raise BadRequest("'data' must be an object (or give 'key' and 'value' with operation 'update')")
        try:
            check_nesting(out)  # the replayed parameters stay within MAX_NESTING (see format/params.py)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
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
        if "\x00" in message or "\x00" in level:
            message, level = message.replace("\x00", "\ufffd"), level.replace("\x00", "\ufffd")
        out.update(level=level.upper(), message=message, context=storable_json(context))
        return out


def parse_lines(lines: Any, size: int, max_events: int | None = None, max_items: int | None = None) -> list:
    """The records of a batch sent as JSONL bytes (msgpack bin). Exactly ``end - start`` bytes of whole lines; blank
    lines, lines that are not JSON objects and lines torn by a crash are skipped, by the rules every reader of the
    file follows (``format.jsonl.parse_lines``).

    Before parsing, the lines are counted against ``max_events`` and, for more than 1 MiB, the values they can hold
    (commas, brackets, braces and newlines: an upper bound) against ``max_items``, the decoding budget msgpack bodies
    have: 32 MiB of ``{}`` lines would otherwise become 11 million dicts."""
    if not isinstance(lines, bytes):
        raise BadRequest(f"field 'lines' must be bytes (msgpack bin), got {type(lines).__name__}")
    if len(lines) != size:
        raise BadRequest(f"field 'lines' holds {len(lines)} bytes but the batch covers {size} ('end' - 'start')")
    if lines and not lines.endswith(b"\n"):
        raise BadRequest("field 'lines' must end with a newline")
    if not lines:
        return []
    if max_events is not None and lines.count(b"\n") > max_events:
        raise PayloadTooLarge(f"more than {max_events} lines in one batch; the limit is {max_events} events")
    if max_items is not None and len(lines) > 1 << 20:
        values = lines.count(b",") + lines.count(b"[") + lines.count(b"{") + lines.count(b"\n")
        if values > max_items:
            raise PayloadTooLarge(f"the batch's lines may hold {values} values; the limit is {max_items}: "
                                  "send smaller batches")
    return parse_jsonl(lines)


def _ranked(events: list, rank: int) -> list:
    """Metric rows with each name as rank ``rank``'s series (``format.layout.rank_series``); other shapes as they are,
    for the validation that follows to refuse."""
    out = []
    for event in events:
        metrics = event.get("metrics") if type(event) is dict else None
        if type(metrics) is dict:
            event = dict(event, metrics={rank_series(name, rank) if type(name) is str and name else name: value
                                         for name, value in metrics.items()})
        out.append(event)
    return out


def _millis(timestamp: float | None) -> int | None:
    return None if timestamp is None else round(timestamp * 1000)


def metric_value(name: str, value: Any) -> Any:
    """Accept float/int/bool/null and the JSONL spellings of non-finite floats; return the value to store."""
    if value is None or type(value) in (float, bool):
        return value
    if type(value) is int:
        return value if _INT64[0] <= value < _INT64[1] else float(value)  # SQL integers are 64-bit
    if type(value) is str and value in TEXT_TO_NONFINITE:
        return TEXT_TO_NONFINITE[value]
    raise BadRequest(f"metric {name!r} has a {type(value).__name__} value; expected a number, bool or null")


def storable_json(value: Any, depth: int = 0) -> Any:
    """Make a parameter/context value storable as JSON: non-finite floats become the JSONL spellings."""
    if isinstance(value, float):
        return value if value - value == 0.0 else nonfinite_text(value)
    if isinstance(value, (dict, list)) and depth >= MAX_NESTING:
        raise BadRequest(f"value is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise BadRequest("object keys must be strings")
        return {no_nul(k): storable_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_json(v, depth + 1) for v in value]
    if isinstance(value, str):
        return no_nul(value)
    if value is None or isinstance(value, (int, bool)):
        return value if not isinstance(value, int) or _INT64[0] <= value < UINT64_END else float(value)
    raise BadRequest(f"value of type {type(value).__name__} cannot be stored")


def no_nul(text: str) -> str:
    """NUL as U+FFFD: PostgreSQL stores no NUL in text or jsonb, and a log line or a parameter must not fail a batch."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text
