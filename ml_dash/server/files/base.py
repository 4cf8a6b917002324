"""What every blob store shares: the ``FileStore`` protocol the routes use, and the checks and spooling helpers.

No request path ever reaches the filesystem: paths only name database rows; the bytes are found by hash. Paths are
still validated so that a stored name is one a client could safely recreate on its own disk.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from typing import AsyncIterator, Mapping, Protocol

from aiohttp import web

from ml_dash.server.errors import BadRequest, PayloadTooLarge

MAX_PATH_LENGTH = 1024


def check_file_path(path: str) -> str:
    """Return ``path`` normalised to ``a/b/c`` or raise ``BadRequest``: no ``..``/``.``, absolute path, NUL, backslash."""
    if not path or len(path) > MAX_PATH_LENGTH:
        raise BadRequest(f"file path must be 1 to {MAX_PATH_LENGTH} characters")
    if "\x00" in path or "\\" in path:
        raise BadRequest("file path must not contain NUL or backslash characters")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise BadRequest("file path must be relative")
    segments = [s for s in path.split("/") if s]
    if not segments or any(s in (".", "..") for s in segments):
        raise BadRequest("file path must not contain '.' or '..' segments")
    return "/".join(segments)


class FileStore(Protocol):
    """Where file bytes live, by SHA-256; routes only see this (local directory: ``BlobStore``; S3: ``files.s3``)."""

    async def open(self) -> None:
        """Check the store is usable (called once at app startup)."""

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Store the streamed bytes (at most ``max_bytes``, else ``PayloadTooLarge``); return (sha256, size)."""

    async def response(self, request: web.Request, sha256: str, headers: Mapping[str, str]) -> web.StreamResponse:
        """The download answer for stored content ``sha256``, carrying ``headers``."""

    async def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        """``length`` bytes of stored content ``sha256`` from ``offset`` (a media item inside a batch's blob)."""

    async def delete(self, sha256: str) -> None:
        """Remove stored content ``sha256`` (gone already is fine): ``ml-dash server gc``, once no record names it."""

    def stored_before(self, when: float) -> AsyncIterator[str]:
        """The sha256 of every blob stored before ``when`` (Unix time), streamed (``ml-dash server gc --sweep-blobs``)."""

    async def close(self) -> None:
        """Release connections (called at app cleanup)."""


def check_sha256(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


async def spool(chunks: AsyncIterator[bytes], max_bytes: int, directory: str, fsync: bool) -> tuple[str, str, int]:
    """Stream ``chunks`` into a new file in ``directory`` while hashing; return (temp path, sha256, size).

    Over ``max_bytes`` raises ``PayloadTooLarge``; on any error the temporary file is gone.
    """
    os.makedirs(directory, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp_path = tempfile.mkstemp(dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"file exceeds {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            if fsync:
                await asyncio.to_thread(os.fsync, out.fileno())
        return tmp_path, digest.hexdigest(), size
    except BaseException:
        remove_quietly(tmp_path)
        raise


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
