"""A media batch's bytes into the file store before its rows go to the database.

The payload (every item's bytes) is one content-addressed blob and the batch's thumbnails another: a replayed batch
makes the same blobs again (same content, same name: nothing new is stored) and its rows are refused by the stream
offset check, so each item is stored once. The thumbnails are made in a worker thread, off the event loop.
"""
from __future__ import annotations

import asyncio
from typing import Any

from ml_dash.server.media.thumbnails import as_chunks, media_rows


async def store_media_batch(blobs: Any, batch: dict) -> None:
    """Put ``batch["payload"]`` and its thumbnails into ``blobs`` (a ``FileStore``); ``batch["events"]`` become the
    rows to store, each naming its blob, offset and length."""
    payload = batch.pop("payload", b"")
    events = batch["events"]
    if not events:
        return
    rows, thumbs = await asyncio.to_thread(media_rows, events, payload)
    sha256, _ = await blobs.put(as_chunks(payload), len(payload))
    thumbs_sha256 = (await blobs.put(as_chunks(thumbs), len(thumbs)))[0] if thumbs else None
    for row in rows:
        row["sha256"] = sha256
        row["thumb_sha256"] = thumbs_sha256 if row["thumb_at"] is not None else None
    batch["events"] = rows
