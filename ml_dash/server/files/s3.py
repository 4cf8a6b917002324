"""File bytes in an S3-compatible bucket (``--files s3://bucket/prefix``): ``<prefix>/blobs/ab/cdef…`` by SHA-256.

The only module that imports boto3, and only when such a store is configured. boto3 is blocking, so every call runs
in a thread (``asyncio.to_thread``) and the event loop never waits on the network. Uploads are spooled to a local
temporary file while hashing (the key is the hash, so it must be known before the first byte is sent), then sent with
``upload_file`` (multipart above 8 MiB) unless an object with that key already exists. Downloads stream the object's
body to the client in 1 MiB chunks, each read off the loop. Credentials and region come from boto3's standard chain
(``AWS_*`` variables, ``~/.aws`` files, instance roles); ``--s3-endpoint`` points at MinIO, Ceph and the like.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable, Mapping, TypeVar

import boto3
from aiohttp import web
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ml_dash.server.config import ConfigError
from ml_dash.server.errors import NotFound, ServerError
from ml_dash.server.files.base import check_sha256, remove_quietly, spool

CHUNK_BYTES = 1 << 20
MISSING = ("404", "NoSuchKey", "NotFound")
T = TypeVar("T")

log = logging.getLogger("ml_dash.server.s3")


class StoreUnavailable(ServerError):
    """The bucket did not answer or refused: the client may retry later."""

    status = 503


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str, endpoint: str | None, spool_dir: str) -> None:
        self.bucket, self.prefix, self.endpoint = bucket, prefix.strip("/"), endpoint
        self._spool_dir = spool_dir
        # Path-style addressing for custom endpoints (MinIO, Ceph, IP addresses); AWS picks its own style.
        config = Config(max_pool_connections=32, retries={"mode": "standard"},
                        s3={"addressing_style": "path"} if endpoint else {})
        self._client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
        self._transfer = TransferConfig(multipart_threshold=8 * CHUNK_BYTES, multipart_chunksize=8 * CHUNK_BYTES)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key_of(self, sha256: str) -> str:
        check_sha256(sha256)
        return "/".join(p for p in (self.prefix, "blobs", sha256[:2], sha256[2:]) if p)

    async def open(self) -> None:
        """Fail at startup, not at the first upload, when the bucket is unreachable or credentials are wrong."""
        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except (BotoCoreError, Boto3Error, ClientError) as exc:
            where = f" at {self.endpoint}" if self.endpoint else ""
            raise ConfigError(f"--files {self.url}: cannot use bucket {self.bucket!r}{where}: {exc}") from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Spool and hash ``chunks`` (``PayloadTooLarge`` past ``max_bytes``), then upload unless already stored."""
        tmp_path, sha256, size = await spool(chunks, max_bytes, self._spool_dir, fsync=False)
        try:
            await self._call(self._upload, tmp_path, self.key_of(sha256))
        finally:
            remove_quietly(tmp_path)
        return sha256, size

    async def delete(self, sha256: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self.key_of(sha256))

    async def stored_before(self, when: float) -> AsyncIterator[str]:
        prefix = "/".join(p for p in (self.prefix, "blobs", "") if p)
        token = None
        while True:  # a page of at most 1,000 keys at a time
            page = await self._call(self._client.list_objects_v2, Bucket=self.bucket, Prefix=prefix,
                                    **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", ()):
                name = item["Key"][len(prefix):].replace("/", "")
                if len(name) == 64 and item["LastModified"].timestamp() < when:
                    yield name
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    async def response(self, request: web.Request, sha256: str, headers: Mapping[str, str]) -> web.StreamResponse:
        key = self.key_of(sha256)
        if request.method == "HEAD":
            head = await self._call(self._client.head_object, Bucket=self.bucket, Key=key)
            response = web.StreamResponse(headers=headers)
            response.content_length = head["ContentLength"]
            await response.prepare(request)
            return response
        obj = await self._call(self._client.get_object, Bucket=self.bucket, Key=key)
        body = obj["Body"]
        try:
            response = web.StreamResponse(headers=headers)
            response.content_length = obj["ContentLength"]
            await response.prepare(request)
            while chunk := await asyncio.to_thread(body.read, CHUNK_BYTES):
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            body.close()  # back to the pool when fully read; a cut-short download drops its connection

    async def read_range(self, sha256: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        obj = await self._call(self._client.get_object, Bucket=self.bucket, Key=self.key_of(sha256),
                               Range=f"bytes={offset}-{offset + length - 1}")
        body = obj["Body"]
        try:
            return await asyncio.to_thread(body.read)
        finally:
            body.close()

    def _upload(self, path: str, key: str) -> None:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return  # identical content is already stored
        except ClientError as exc:
            if _code(exc) not in MISSING:
                raise
        self._client.upload_file(path, self.bucket, key, ExtraArgs={"ContentType": "application/octet-stream"},
                                 Config=self._transfer)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` in a thread; a missing object is 404, any other S3 failure is logged and answered 503."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ClientError as exc:
            if _code(exc) in MISSING:
                raise NotFound("file content is missing from the file store") from None
            log.exception("S3 request to %s failed", self.url)
            raise StoreUnavailable(f"file store {self.url} failed: {_code(exc)}") from None
        except (BotoCoreError, Boto3Error) as exc:  # no connection, bad credentials, a failed multipart upload
            log.exception("S3 request to %s failed", self.url)
            raise StoreUnavailable(f"file store {self.url} is unavailable: {type(exc).__name__}") from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
