"""The media index: what one line of ``media.jsonl`` holds, and how a batch of lines finds its bytes.

The writer appends an item's encoded bytes to a packed segment file (``format.layout.media_segment_path``) and then
one index line::

    {"timestamp", "step", "key", "index", "kind", "format", "segment", "offset", "length", "digest",
     "shape", "caption", "meta"}

``digest`` is the SHA-256 (hex) of the item's bytes: a reader checks it, so an entry whose bytes never reached the
disk whole (a crash between the two writes) is skipped like a torn JSONL line. The uploader sends a batch of index
lines with ``payload``: the bytes of every entry ``payload_span`` accepts, concatenated in line order. Client and
server both walk the lines with ``format.jsonl.parse_lines`` and ``payload_span``, so they agree on where each
entry's bytes are in the payload without any offset table.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ml_dash.format.limits import MAX_CAPTION_CHARS, MAX_HISTOGRAM_BINS, MAX_MEDIA_ITEM_BYTES, MAX_NAME_LENGTH

KINDS = ("image", "histogram", "audio", "video", "table")
# format -> content type. "hist" is ``pack_histogram``'s layout; "table" is JSON (see ``client/media/encode.py``).
CONTENT_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg", "gif": "image/gif",
                 "apng": "image/apng", "mp4": "video/mp4", "wav": "audio/wav", "hist": "application/octet-stream",
                 "table": "application/json"}
FORMATS = tuple(CONTENT_TYPES)
_INDEX_FIELDS = ("segment", "offset", "length")


def digest(payload: bytes | memoryview) -> str:
    return hashlib.sha256(payload).hexdigest()


def index_entry(timestamp: float, step: int | None, key: str, index: int, kind: str, fmt: str, segment: int,
                offset: int, payload: bytes, shape: list[int], caption: str | None, meta: dict) -> dict:
    """The index line's record for an item whose ``payload`` was written at ``offset`` of ``segment``."""
    return {"timestamp": timestamp, "step": step, "key": key, "index": index, "kind": kind, "format": fmt,
            "segment": segment, "offset": offset, "length": len(payload), "digest": digest(payload), "shape": shape,
            "caption": caption, "meta": meta}


def payload_span(entry: Any) -> tuple[int, int, int] | None:
    """(segment, offset, length) of an index record, or None when it names no bytes (not an entry of ours): such a
    line contributes nothing to a batch's payload, on either side."""
    if type(entry) is not dict:
        return None
    values = [entry.get(f) for f in _INDEX_FIELDS]
    if any(type(v) is not int or v < 0 for v in values) or values[2] > MAX_MEDIA_ITEM_BYTES:
        return None
    return values[0], values[1], values[2]


def check_entry(entry: dict, max_name_length: int = MAX_NAME_LENGTH) -> str | None:
    """What is wrong with an index record (its bytes aside), or None. Both the local reader and the server use it."""
    key, step, kind = entry.get("key"), entry.get("step"), entry.get("kind")
    if type(key) is not str or not 0 < len(key) <= max_name_length or "\x00" in key:
        return f"'key' must be a string of 1 to {max_name_length} characters"
    if step is not None and (type(step) is not int or not -(2**63) <= step < 2**63):
        return "'step' must be an integer or null"
    if kind not in KINDS:
        return f"'kind' must be one of {', '.join(KINDS)}"
    if entry.get("format") not in FORMATS:
        return f"'format' must be one of {', '.join(FORMATS)}"
    if type(entry.get("index", 0)) is not int:
        return "'index' must be an integer"
    ts = entry.get("timestamp")
    if type(ts) not in (int, float) or ts - ts != 0:
        return "'timestamp' must be a finite number"
    caption = entry.get("caption")
    if caption is not None and (type(caption) is not str or len(caption) > MAX_CAPTION_CHARS):
        return f"'caption' must be a string of at most {MAX_CAPTION_CHARS} characters"
    digest_ = entry.get("digest")
    if type(digest_) is not str or len(digest_) != 64:
        return "'digest' must be a SHA-256 hex digest"
    shape = entry.get("shape")
    if type(shape) is not list or len(shape) > 8 or any(type(n) is not int or n < 0 for n in shape):
        return "'shape' must be a list of at most 8 non-negative integers"
    if type(entry.get("meta", {})) is not dict:
        return "'meta' must be an object"
    return None


def pack_histogram(edges: np.ndarray, counts: np.ndarray) -> bytes:
    """A histogram's bytes: ``bins`` as uint32, then ``bins + 1`` float64 edges, then ``bins`` float64 counts."""
    bins = len(counts)
    return (np.uint32(bins).tobytes() + np.ascontiguousarray(edges, "<f8").tobytes()
            + np.ascontiguousarray(counts, "<f8").tobytes())


def unpack_histogram(payload: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) of ``pack_histogram``'s bytes; ``ValueError`` for anything else."""
    if len(payload) < 4:
        raise ValueError("a histogram payload is at least 4 bytes")
    bins = int(np.frombuffer(payload[:4], "<u4")[0])
    if not 0 < bins <= MAX_HISTOGRAM_BINS or len(payload) != 4 + 8 * (2 * bins + 1):
        raise ValueError("not a histogram payload")
    edges = np.frombuffer(payload, "<f8", bins + 1, 4)
    counts = np.frombuffer(payload, "<f8", bins, 4 + 8 * (bins + 1))
    return edges, counts
