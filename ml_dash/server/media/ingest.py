"""A media batch's index entries, checked against the bytes it carries.

The client sends a batch of ``media.jsonl`` lines with ``payload``: the bytes of each entry that
``format.media.payload_span`` accepts, in line order (``client/upload/media_batch.py``). Here the same walk finds
each entry's slice; an entry that fails ``format.media.check_entry`` or its digest is left out and reported in
``rejected`` (its bytes are skipped, the batch's offsets stay exact), as a bad metric record is.
"""
from __future__ import annotations

from typing import Any

from ml_dash.format.media import check_entry, digest, payload_span
from ml_dash.server.errors import BadRequest


def media_events(records: list, payload: Any, max_name_length: int, rejected: list[dict]) -> list[dict]:
    """The storable entries of a batch, each with ``at``: where its bytes start in ``payload``."""
    if not isinstance(payload, bytes):
        raise BadRequest(f"field 'payload' must be bytes (msgpack bin), got {type(payload).__name__}")
    kept, position = [], 0
    for i, record in enumerate(records):
        span = payload_span(record)
        if span is None:
            rejected.append({"index": i, "error": "not a media index entry"})
            continue
        length = span[2]
        data = memoryview(payload)[position:position + length]
        at, position = position, position + length
        problem = check_entry(record, max_name_length)
        if problem is None and len(data) != length:
            raise BadRequest(f"field 'payload' holds {len(payload)} bytes; the entries name more")
        if problem is None and digest(data) != record["digest"]:
            problem = "its bytes do not match its digest"
        if problem is not None:
            rejected.append({"index": i, "error": problem})
            continue
        kept.append({"timestamp": float(record["timestamp"]), "step": record.get("step"), "key": record["key"],
                     "index": record.get("index", 0), "kind": record["kind"], "format": record["format"],
                     "length": length, "digest": record["digest"], "shape": record["shape"],
                     "caption": _no_nul(record.get("caption")), "meta": record.get("meta") or {}, "at": at})
    if position != len(payload):
        raise BadRequest(f"field 'payload' holds {len(payload)} bytes but the entries name {position}")
    return kept


def _no_nul(text: str | None) -> str | None:
    return text.replace("\x00", "\ufffd") if text and "\x00" in text else text
