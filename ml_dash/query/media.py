"""Media read back: a local experiment's index and segments, and the decoding both readers share (docs/media.md).

``record.media(key)`` yields ``(step, object)``: an image as an HxWxC uint8 array, a histogram as ``(edges,
counts)``, audio as ``(samples, rate)``, a video as a TxHxWxC array (animated PNG) or its MP4 bytes, a table as
``{"columns", "rows"}`` (image cells as arrays). An entry whose bytes are missing or fail their digest (a torn
segment tail) is skipped, as a torn JSONL line is.
"""
from __future__ import annotations

import base64
import os
from typing import Any, Iterator

import numpy as np
import orjson

from ml_dash.format.codecs import decode_image, decode_png, decode_wav
from ml_dash.format.jsonl import iter_jsonl
from ml_dash.format.layout import media_segment_path, stream_path
from ml_dash.format.media import check_entry, digest, payload_span, unpack_histogram


def decode(entry: dict, payload: bytes) -> Any:
    """The decoded object of one item (see the module docstring); undecodable bytes come back as they are."""
    kind, fmt = entry.get("kind"), entry.get("format")
    try:
        if kind == "image":
            return decode_image(payload)
        if kind == "histogram":
            return unpack_histogram(payload)
        if kind == "audio":
            return decode_wav(payload)
        if kind == "video" and fmt == "apng":
            frames = decode_png(payload)
            return frames if frames.ndim == 4 else frames[None]
        if kind == "table":
            table = orjson.loads(payload)
            for row in table["rows"]:
                for i, cell in enumerate(row):
                    if type(cell) is dict and cell.get("_type") == "image":
                        row[i] = decode_image(base64.b64decode(cell["data"]))
            return table
    except ValueError:
        pass
    return payload


def in_range(step: Any, step_min: float | None, step_max: float | None) -> bool:
    if step_min is None and step_max is None:
        return True
    if type(step) is not int:
        return False
    return (step_min is None or step >= step_min) and (step_max is None or step <= step_max)


def local_items(directory: str, key: str | None, step_min: float | None = None,
                step_max: float | None = None) -> Iterator[tuple[dict, bytes]]:
    """(index entry, bytes) of each whole item of ``key`` (None: every key) in file order."""
    files: dict[int, Any] = {}
    try:
        for entry, _ in iter_jsonl(stream_path(directory, "media")):
            span = payload_span(entry)
            if span is None or check_entry(entry) is not None:
                continue
            if (key is not None and entry["key"] != key) or not in_range(entry.get("step"), step_min, step_max):
                continue
            segment, offset, length = span
            f = files.get(segment)
            if f is None:
                try:
                    f = files[segment] = open(media_segment_path(directory, segment), "rb")
                except FileNotFoundError:
                    continue
            f.seek(offset)
            payload = f.read(length)
            if len(payload) == length and digest(payload) == entry["digest"]:
                yield entry, payload
    finally:
        for f in files.values():
            f.close()


def local_keys(directory: str) -> list[dict]:
    """``{key, kind, count, step_min, step_max}`` per key, by key (index entries only: no bytes are read)."""
    keys: dict[str, dict] = {}
    for entry, _ in iter_jsonl(stream_path(directory, "media")):
        if payload_span(entry) is None or check_entry(entry) is not None:
            continue
        found = keys.setdefault(entry["key"], {"key": entry["key"], "kind": entry["kind"], "count": 0,
                                               "step_min": None, "step_max": None})
        found["count"] += 1
        step = entry.get("step")
        if type(step) is int:
            found["step_min"] = step if found["step_min"] is None else min(found["step_min"], step)
            found["step_max"] = step if found["step_max"] is None else max(found["step_max"], step)
    return [keys[k] for k in sorted(keys)]


def histogram_arrays(rows: list[tuple[Any, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """``{"step", "edges", "counts"}`` of (step, edges, counts) rows: 2-D arrays when every row has the same bins,
    else lists of arrays."""
    steps = np.array([np.nan if s is None else s for s, _, _ in rows], dtype=np.float64)
    edges = [np.asarray(e, np.float64) for _, e, _ in rows]
    counts = [np.asarray(c, np.float64) for _, _, c in rows]
    if rows and len({len(c) for c in counts}) == 1:
        return {"step": steps, "edges": np.stack(edges), "counts": np.stack(counts)}
    return {"step": steps, "edges": edges, "counts": counts}


def local_histograms(directory: str, key: str, step_min: float | None, step_max: float | None) -> dict[str, Any]:
    rows = []
    for entry, payload in local_items(directory, key, step_min, step_max):
        if entry["kind"] == "histogram":
            edges, counts = unpack_histogram(payload)
            rows.append((entry.get("step"), edges, counts))
    return histogram_arrays(rows)


def export_name(entry: dict) -> str:
    """A file name for one item: ``<step>_<index>.<extension>`` (``ml-dash export --media``)."""
    ext = {"hist": "npz", "table": "json", "apng": "png"}.get(entry["format"], entry["format"])
    step = entry.get("step")
    return f"{'none' if step is None else step:0>8}_{entry.get('index', 0)}.{ext}"


def export_bytes(entry: dict, payload: bytes) -> bytes:
    """What ``export_name``'s file holds: the item's bytes, a histogram as an .npz of edges and counts."""
    if entry["format"] != "hist":
        return payload
    import io

    edges, counts = unpack_histogram(payload)
    out = io.BytesIO()
    np.savez(out, edges=edges, counts=counts)
    return out.getvalue()


def safe_key_dir(key: str) -> str:
    """A key as a relative directory: dots stay, anything a path could misread becomes ``_``."""
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return os.path.join(*parts) if parts else "_"
