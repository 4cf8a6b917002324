"""Reading a request's body: within ``max_body_bytes`` (413) and the body timeouts (408), then decoded by ``ingest``.

aiohttp inflates a gzip body as it is read, so every limit here counts inflated bytes. Decoding and validating are
``ingest``'s functions on bytes; a large body is decoded in a thread (batches: ``ingest_pool``), not on the loop.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from ml_dash.server.errors import BrokenBody, PayloadTooLarge, RequestTimeout
from ml_dash.server.http.keys import CONFIG_KEY
from ml_dash.server.ingest import decode_body
from ml_dash.server.ingest_pool import OFF_LOOP_BYTES


def content_type(request: web.Request) -> str:
    """The body's content type, or "" for a request without a body (aiohttp would say application/octet-stream)."""
    return request.content_type if request.body_exists else ""


async def read_raw(request: web.Request) -> bytes:
    """The body's bytes (inflated if gzip) within ``max_body_bytes`` (413) and the body timeouts (408)."""
    config = request.app[CONFIG_KEY]
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds {config.max_body_bytes}")
    if not request.body_exists:
        return b""
    try:
        return await read_stream(request.content, config.max_body_bytes, config.body_timeout, config.body_idle_timeout)
    except web.RequestPayloadError as exc:  # e.g. a body claiming gzip that is not
        raise BrokenBody(f"malformed request body: {exc}") from None


async def read_body(request: web.Request, then: Callable[[Any], Any] | None = None) -> Any:
    """The decoded body; ``then(decoded)`` (a validation) runs with the decode, in a thread for a large body."""
    config = request.app[CONFIG_KEY]
    raw = await read_raw(request)
    kind = content_type(request)

    def decode() -> Any:
        body = decode_body(raw, kind, config.max_body_items, config.max_json_bytes)
        return body if then is None else then(body)

    return await asyncio.to_thread(decode) if len(raw) > OFF_LOOP_BYTES else decode()


async def read_stream(stream: Any, limit: int, total_timeout: float, idle_timeout: float) -> bytes:
    """All of a body (an aiohttp ``StreamReader``, already inflated if gzip) up to ``limit`` bytes (else 413), read
    within ``total_timeout`` seconds with at most ``idle_timeout`` between chunks (else 408)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in timed_chunks(stream, total_timeout, idle_timeout):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def timed_chunks(stream: Any, total_timeout: float, idle_timeout: float,
                       limit: int | None = None, limit_message: str = "") -> AsyncIterator[bytes]:
    """The chunks of a body, or ``RequestTimeout`` when the whole body takes longer than ``total_timeout`` or the
    client sends nothing for ``idle_timeout`` seconds (a client trickling a byte at a time holds a connection and a
    handler otherwise forever). Past ``limit`` bytes: ``PayloadTooLarge(limit_message)``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout
    size = 0
    while True:
        wait = min(idle_timeout, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                chunk = await stream.readany()
        except TimeoutError:
            what = "in total" if deadline - loop.time() <= 0 else "between chunks"
            raise RequestTimeout(f"the request body took too long ({total_timeout:g} s at most in total, "
                                 f"{idle_timeout:g} s between chunks; timed out {what})") from None
        if not chunk:
            return
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(limit_message or f"request body exceeds {limit} bytes")
        yield chunk
