"""Content-addressed blob store: file bytes live under ``<data>/blobs/ab/cdef…`` named by their SHA-256.

No request path ever reaches the filesystem: paths only name database rows; the bytes are found by hash. Paths are
still validated so that a stored name is one a client could safely recreate on its own disk.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from typing import AsyncIterator

from ._errors import BadRequest, PayloadTooLarge

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


class BlobStore:
    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "blobs")
        self._tmp = os.path.join(self.root, "tmp")

    def path_of(self, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return os.path.join(self.root, sha256[:2], sha256[2:])

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Stream ``chunks`` to a temporary file while hashing; move it into place by hash. Returns (sha256, size)."""
        os.makedirs(self._tmp, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp_path = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(f"file exceeds {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
            sha256 = digest.hexdigest()
            final = self.path_of(sha256)
            if os.path.exists(final):
                os.unlink(tmp_path)  # identical content is already stored
            else:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(tmp_path, final)
            return sha256, size
        except BaseException:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
            raise
