"""Bearer-token authentication, which gives each request its ``Scope`` (``scope.py``: the per-namespace check).

With no tokens configured (only allowed on a loopback bind) every request is let through. Otherwise each ``/api``
and ``/graphql`` request needs ``Authorization: Bearer <token>``; a token limited to namespaces gets 403 elsewhere.
"""
from __future__ import annotations

import hmac
from typing import Awaitable, Callable

from aiohttp import web

from ml_dash.server.config import TokenTable
from ml_dash.server.errors import Unauthorized
from ml_dash.server.http.scope import SCOPE_KEY, UNLIMITED, Scope

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
        request[SCOPE_KEY] = UNLIMITED
        if tokens and request.path.startswith(PROTECTED_PREFIXES):
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not presented.strip():
                raise Unauthorized("missing 'Authorization: Bearer <token>' header")
            match, allowed = find_token(tokens, presented.strip())
            if not match:
                raise Unauthorized("unknown token")
            request[SCOPE_KEY] = Scope(allowed)
        return await handler(request)

    return middleware

