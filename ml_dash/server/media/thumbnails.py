"""Thumbnails made at ingest, in a worker thread (never on the event loop), and the rows a media batch stores.

An image (or an animated PNG's first frame, or a video through Pillow when it can read it) is shrunk to fit
``THUMBNAIL_SIDE`` by whole-pixel box averaging in numpy, and stored as PNG: every thumbnail of a batch goes into one
blob, as the items' bytes do, so 1,000 images are a handful of objects in the file store, not 2,000.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ml_dash.format.codecs import decode_image, encode_png
from ml_dash.format.limits import THUMBNAIL_SIDE
from ml_dash.format.media import unpack_histogram


def shrink(pixels: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """``pixels`` (HxWxC uint8) averaged over whole-pixel boxes until both sides fit ``side``."""
    h, w = pixels.shape[:2]
    factor = max(1, -(-max(h, w) // side))
    if factor == 1:
        return pixels
    hh, ww = h // factor * factor, w // factor * factor
    boxes = pixels[:hh, :ww].reshape(hh // factor, factor, ww // factor, factor, -1).astype(np.float32)
    return np.rint(boxes.mean(axis=(1, 3))).astype(np.uint8)


def thumbnail(entry: dict, data: bytes) -> bytes | None:
    """A PNG thumbnail of an image or video item, or None (other kinds, or bytes nothing here can decode)."""
    if entry["kind"] not in ("image", "video") or entry["format"] == "mp4":
        return None
    try:
        pixels = decode_image(data)
    except Exception:  # a format Pillow (absent, or not this one) cannot read: the item is still stored
        return None
    if pixels.shape[0] <= THUMBNAIL_SIDE and pixels.shape[1] <= THUMBNAIL_SIDE and entry["format"] == "png":
        return None  # small already: the item itself is its thumbnail
    return encode_png(shrink(pixels), 6)


def media_rows(events: list[dict], payload: bytes) -> tuple[list[dict], bytes]:
    """(rows to store, the thumbnails' blob): each row is an entry with ``thumb_at``/``thumb_length`` into the
    blob, and a histogram's edges and counts (CPU work: run it in a thread)."""
    thumbs: list[bytes] = []
    size = 0
    rows = []
    for event in events:
        data = payload[event["at"]:event["at"] + event["length"]]
        row = dict(event, shape=orjson.dumps(event["shape"]).decode(), meta=orjson.dumps(event["meta"]).decode(),
                   thumb_at=None, thumb_length=None, edges=None, counts=None)
        if event["kind"] == "histogram":
            try:
                edges, counts = unpack_histogram(data)
                row["edges"], row["counts"] = edges.tobytes(), counts.tobytes()
            except ValueError:
                pass
        else:
            thumb = thumbnail(event, data)
            if thumb is not None:
                row["thumb_at"], row["thumb_length"] = size, len(thumb)
                thumbs.append(thumb)
                size += len(thumb)
        rows.append(row)
    return rows, b"".join(thumbs)


def as_chunks(data: bytes) -> Any:
    """``data`` as the async iterator of chunks a ``FileStore.put`` takes."""
    async def chunks():
        yield data

    return chunks()
