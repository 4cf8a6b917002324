"""Browser-facing protections, as one middleware: the Host check, GraphQL's content type and the security headers.

* **Host** (DNS rebinding): a server bound to loopback answers only requests whose ``Host`` is ``localhost`` or a
  loopback address (``127.0.0.1``, ``[::1]``; any port), or a name in ``allowed_hosts``
  (``ML_DASH_ALLOWED_HOSTS``, e.g. the name a reverse proxy forwards); anything else gets 421. A page on
  ``evil.example`` that re-points its name at 127.0.0.1 therefore cannot read a token-less local server. A server
  bound elsewhere needs tokens (ServerConfig.check) and checks ``Host`` only when ``allowed_hosts`` is set.
* **POST /graphql** must say ``Content-Type: application/json`` (or ``application/graphql``): a cross-site form or
  ``fetch`` with ``text/plain`` (which a browser sends without asking the server first) gets 415 and never runs.
  ``GET /graphql`` only describes the endpoint; it runs nothing.
* **Headers** on every answer: ``Content-Security-Policy`` (the dashboard loads only its own scripts and
  ``/static/vendor/plotly.min.js``; plotly.js sets inline styles, hence ``style-src 'unsafe-inline'``; images may be
  ``data:``/``blob:`` URLs for file previews), ``frame-ancestors 'none'`` with ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``. File downloads carry
  ``Content-Disposition: attachment`` (``attachment``, used by rest.py).
"""
from __future__ import annotations

import ipaddress
from typing import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from ml_dash.server.config import ServerConfig, is_loopback
from ml_dash.server.http.responses import json_response

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
GRAPHQL_CONTENT_TYPES = ("application/json", "application/graphql")
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:",
    "media-src 'self' blob:",  # the media section's audio and video players play fetched bytes (docs/media.md)
    "connect-src 'self'", "font-src 'self' data:", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def host_name(header: str) -> str:
    """``Host`` without its port, lower case: ``[::1]:8000`` → ``::1``, ``Localhost:80`` → ``localhost``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, _, _port = header.partition(":")
    return name


def allowed_host_names(config: ServerConfig) -> frozenset[str] | None:
    """The Host names this server answers, or None for any (a non-loopback bind without ``allowed_hosts``)."""
    configured = frozenset(host_name(h) for h in config.allowed_hosts if h.strip())
    if is_loopback(config.host):
        return LOOPBACK_NAMES | configured | {host_name(config.host)}
    return configured or None


def _answered(name: str, allowed: frozenset[str]) -> bool:
    """A configured name, or a loopback address written as one (``127.0.0.2``, ``::1``): only names can be re-pointed
    by DNS, never an address literal."""
    if name in allowed:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def attachment(path: str) -> str:
    """A ``Content-Disposition`` value that makes a browser save the file (named after its last path segment)
    instead of rendering it on the server's origin."""
    name = path.rsplit("/", 1)[-1]
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def security_middleware(config: ServerConfig) -> Callable:
    allowed = allowed_host_names(config)

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        response = _refusal(request, allowed)
        if response is None:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # redirects and the like, which the error middleware lets through
                exc.headers.update(_missing(exc.headers))
                raise
        # An answer already sent (a download streamed from S3, an error written early) went with the headers it had:
        # those paths add SECURITY_HEADERS themselves.
        if not response.prepared:
            response.headers.update(_missing(response.headers))
        return response

    return middleware


def _missing(headers) -> dict[str, str]:
    return {k: v for k, v in SECURITY_HEADERS.items() if k not in headers}


def _refusal(request: web.Request, allowed: frozenset[str] | None) -> web.Response | None:
    host = request.headers.get("Host")
    if allowed is not None and host is not None and not _answered(host_name(host), allowed):
        response = json_response({"error": f"this server does not answer for host {host!r}: use localhost or "
                                           "127.0.0.1, or add the name to ML_DASH_ALLOWED_HOSTS"}, status=421)
        response.force_close()
        return response
    if request.method == "POST" and request.path == "/graphql" and request.content_type not in GRAPHQL_CONTENT_TYPES:
        return json_response({"error": "POST /graphql needs Content-Type: application/json (or application/graphql),"
                                       f" got {request.content_type!r}"}, status=415)
    return None
