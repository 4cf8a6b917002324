"""Bearer-token authentication and per-namespace authorization.

With no tokens configured (only allowed on a loopback bind) every request is let through. Otherwise each ``/api``
and ``/graphql`` request needs ``Authorization: Bearer <token>``; a token limited to namespaces gets 403 elsewhere.
"""
from __future__ import annotations

import hmac
from typing import Awaitable, Callable

from aiohttp import web

from ml_dash.server.config import TokenTable
from ml_dash.server.errors import Forbidden, Unauthorized

# What the authenticated token may touch: None means every namespace.
ALLOWED_NAMESPACES = web.RequestKey("allowed_namespaces", object)
PROTECTED_PREFIXES = ("/api/", "/graphql")


def find_token(tokens: TokenTable, presented: str) -> tuple[bool, frozenset[str] | None]:
    """Compare against every token in constant time per token, so response timing does not reveal a prefix."""
    match, allowed = False, None
    for token, namespaces in tokens.items():
        # Header values arrive decoded with surrogateescape: a non-UTF-8 token must compare unequal, not raise.
        if hmac.compare_digest(token.encode(), presented.encode("utf-8", "surrogateescape")):
            match, allowed = True, namespaces
    return match, allowed


def auth_middleware(tokens: TokenTable) -> Callable:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        request[ALLOWED_NAMESPACES] = None
        if tokens and request.path.startswith(PROTECTED_PREFIXES):
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not presented.strip():
                raise Unauthorized("missing 'Authorization: Bearer <token>' header")
            match, allowed = find_token(tokens, presented.strip())
            if not match:
                raise Unauthorized("unknown token")
            request[ALLOWED_NAMESPACES] = allowed
        return await handler(request)

    return middleware


def allowed_namespaces(request: web.Request) -> frozenset[str] | None:
    return request.get(ALLOWED_NAMESPACES)


def check_namespace(allowed: frozenset[str] | None, namespace: str) -> None:
    if allowed is not None and namespace not in allowed:
        raise Forbidden(f"this token may not access namespace {namespace!r}")
