"""One server's API over a shared ``aiohttp.ClientSession``: msgpack requests, JSON answers, errors classified.

Answers are parsed as JSON only (never unpickled, never ``eval``-ed): the network is not trusted with code.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import zlib
from typing import Any, Callable
from urllib.parse import quote

import aiohttp
import msgpack
import orjson
import yarl

from ml_dash.settings import UPLOAD_GZIP
from ml_dash.client.upload.retry import (
    Retrier,
    RetryableError,
    is_retryable_status,
    parse_retry_after,
)

API = "/api/v1"
# The version of docs/protocol.md this client speaks; a server whose GET /health answers another is not talked to.
PROTOCOL = 1
GZIP_MIN_BYTES = 64 << 10  # smaller bodies are not worth a compression round on either side
_GZIP_CHOICES = {"auto": None, "on": True, "1": True, "true": True, "off": False, "0": False, "false": False}


def use_gzip(base_url: str, choice: str | None = None) -> bool:
    """Whether request bodies are gzipped: ``ML_DASH_UPLOAD_GZIP`` = on / off / auto (default: on, except to a
    loopback server, where compressing only costs CPU)."""
    raw = UPLOAD_GZIP.get(choice).strip().lower()
    if raw not in _GZIP_CHOICES:
        raise ValueError(f"UPLOAD_GZIP must be one of auto, on, off; got {raw!r}")
    explicit = _GZIP_CHOICES[raw]
    if explicit is not None:
        return explicit
    host = yarl.URL(base_url).host or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name other than localhost: assume a network between us


class HTTPError(Exception):
    """A non-retryable answer (4xx other than 408/425/429): the request itself is wrong; report it."""

    def __init__(self, method: str, path: str, status: int, message: str, body: dict | None = None) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body or {}


class Conflict(HTTPError):
    """409 on a batch: the server has ``acked`` bytes of the stream; resume from there."""

    @property
    def acked(self) -> int:
        return int(self.body.get("acked", 0))


class ServerClient:
    """The uploader's HTTP client for one server (not ``ml_dash.Api``, the public reader)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str | None,
                 retrier_factory: Callable[[], Retrier]) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.retrier_factory = retrier_factory
        self.gzip = use_gzip(base_url)
        self.requests = 0  # attempts made, for the benchmark and the sync summary
        self._health: dict | None = None

    async def health(self) -> dict:
        """``GET /health``'s answer, asked once per client (retried like any call)."""
        if self._health is None:
            answer = await self.call("GET", "/health", root=True)
            self._health = answer if isinstance(answer, dict) else {}
        return self._health

    async def protocol(self) -> int | None:
        """The protocol number ``GET /health`` answers; ``None`` from a server whose answer carries none."""
        number = (await self.health()).get("protocol")
        return number if type(number) is int else None

    async def streams(self) -> frozenset[str] | None:
        """The streams the server takes, as ``GET /health`` lists them; ``None`` from a server that lists none."""
        streams = (await self.health()).get("streams")
        return frozenset(s for s in streams if isinstance(s, str)) if isinstance(streams, list) else None

    async def call(self, method: str, path: str, body: Any = None,
                   file_path: str | None = None, on_open: Callable[[int, int], None] | None = None,
                   root: bool = False) -> dict:
        """``method path`` (under ``/api/v1``, or the server's root with ``root``) with a msgpack ``body`` (or the
        content of ``file_path``, streamed), retried per the retrier; returns the JSON answer. Raises
        ``HTTPError``/``Conflict``, or ``GiveUp`` from a bounded retrier."""
        return await self.retrier_factory().run(lambda: self._attempt(method, path, body, file_path, on_open, root))

    async def _attempt(self, method: str, path: str, body: Any, file_path: str | None,
                       on_open: Callable[[int, int], None] | None, root: bool = False) -> dict:
        url = yarl.URL(self.base_url + ("" if root else API) + path, encoded=True)
        headers = dict(self.headers)
        self.requests += 1
        try:
            if file_path is not None:
                headers["Content-Type"] = "application/octet-stream"
                # Reopened per attempt: a retry streams the file from its start. The open descriptor pins one
                # version of the file even if the user saves a new one (saves replace by rename).
                with open(file_path, "rb") as f:
                    if on_open is not None:
                        st = os.fstat(f.fileno())
                        on_open(st.st_size, st.st_mtime_ns)
                    async with self.session.request(method, url, data=f, headers=headers) as answer:
                        return await self._read_answer(method, path, answer)
            data = None
            if body is not None:
                headers["Content-Type"] = "application/msgpack"
                data = msgpack.packb(body, use_bin_type=True)
                if self.gzip and len(data) >= GZIP_MIN_BYTES:
                    # Level 1: metric batches shrink ~3-5x at ~100+ MB/s; the server inflates within its size limit.
                    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
                    data = compressor.compress(data) + compressor.flush()
                    headers["Content-Encoding"] = "gzip"
            async with self.session.request(method, url, data=data, headers=headers) as answer:
                return await self._read_answer(method, path, answer)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            if isinstance(exc, FileNotFoundError) and file_path is not None:
                raise
            if _tls_failed(exc) and url.scheme == "https":
                # Retrying cannot help; the usual cause is https:// against a plain-http ml-dash server.
                plain = "http://" + self.base_url.split("://", 1)[1]
                raise HTTPError(method, path, 0, f"TLS handshake with {self.base_url} failed ({exc}); if the server "
                                f"is a plain-http ml-dash server, use remote={plain!r}") from exc
            raise RetryableError(f"{method} {path}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def _read_answer(self, method: str, path: str, answer: aiohttp.ClientResponse) -> dict:
        raw = await answer.read()
        try:
            parsed = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            parsed = {"error": raw[:200].decode(errors="replace")}
        if not isinstance(parsed, dict):
            parsed = {"value": parsed}
        status = answer.status
        if 200 <= status < 300:
            return parsed
        message = str(parsed.get("error") or answer.reason or "")
        if is_retryable_status(status):
            raise RetryableError(f"{method} {path}: HTTP {status} {message}".rstrip(), status,
                                 parse_retry_after(answer.headers.get("Retry-After")))
        if status == 409:
            raise Conflict(method, path, status, message, parsed)
        if status == 401:
            message += (" (the server wants a token: set ML_DASH_TOKEN to one it was started with, or send the run "
                        "later with `ml-dash sync --token TOKEN`)")
        raise HTTPError(method, path, status, message, parsed)


def _tls_failed(exc: BaseException) -> bool:
    """A TLS handshake failure (wrong protocol, certificate): a connection error that retrying does not fix."""
    import ssl

    while exc is not None:
        if isinstance(exc, (ssl.SSLError, ssl.CertificateError, aiohttp.ClientSSLError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def file_url_path(experiment_id: str, relative_path: str) -> str:
    return f"/experiments/{experiment_id}/files/" + quote(relative_path, safe="/")
