"""Content-addressed blobs in a local (or shared, e.g. NFS) directory: ``<data>/blobs/ab/cdef…`` named by SHA-256."""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator, Mapping

from aiohttp import web

from ml_dash.server.files.base import check_sha256, remove_quietly, spool


class BlobStore:
    """Blobs in a local (or shared, e.g. NFS) directory: ``<root>/blobs/ab/cdef…``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "blobs")
        self._tmp = os.path.join(self.root, "tmp")

    def path_of(self, sha256: str) -> str:
        check_sha256(sha256)
        return os.path.join(self.root, sha256[:2], sha256[2:])

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Stream ``chunks`` to a temporary file while hashing; move it into place by hash. Returns (sha256, size)."""
        tmp_path, sha256, size = await spool(chunks, max_bytes, self._tmp, fsync=True)
        try:
            final = self.path_of(sha256)
            if os.path.exists(final):
                os.unlink(tmp_path)  # identical content is already stored
            else:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(tmp_path, final)
            return sha256, size
        except BaseException:
            remove_quietly(tmp_path)
            raise

    async def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        path = self.path_of(sha256)

        def read() -> bytes:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(length)

        return await asyncio.to_thread(read)

    async def delete(self, sha256: str) -> None:
        remove_quietly(self.path_of(sha256))

    async def stored_before(self, when: float) -> AsyncIterator[str]:
        try:
            folders = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and len(e.name) == 2)
        except FileNotFoundError:
            return
        for folder in folders:  # one folder (1/256 of the blobs) listed at a time
            for entry in os.scandir(os.path.join(self.root, folder)):
                if entry.is_file() and entry.stat().st_mtime < when and len(folder + entry.name) == 64:
                    yield folder + entry.name

    async def response(self, request: web.Request, sha256: str, headers: Mapping[str, str]) -> web.StreamResponse:
        return web.FileResponse(self.path_of(sha256), headers=headers)
