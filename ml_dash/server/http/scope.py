"""What a request's token may touch, checked the same way by every REST view and GraphQL resolver.

A token is limited to some namespaces, or (``None``) to none at all; a request outside its namespaces gets 403. The
auth middleware (``auth.py``) puts the request's ``Scope`` on it; GraphQL resolvers get the same object.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ml_dash.server.errors import Forbidden


class Scope:
    __slots__ = ("namespaces",)

    def __init__(self, namespaces: frozenset[str] | None = None) -> None:
        self.namespaces = namespaces  # None: every namespace

    @property
    def limited(self) -> bool:
        return self.namespaces is not None

    def allows(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def check(self, namespace: str) -> None:
        if not self.allows(namespace):
            raise Forbidden(f"this token may not access namespace {namespace!r}")

    def listing(self, namespace: str | None) -> frozenset[str] | None:
        """The namespaces a listing may show: the one asked for (403 outside the scope), else all the token's."""
        if namespace is None:
            return self.namespaces
        self.check(namespace)
        return frozenset([namespace])

    async def experiment(self, storage: Any, experiment_id: str) -> dict[str, Any]:
        """The experiment (``NotFound`` when there is none), after checking its namespace (404 before 403 is fine:
        ids are unguessable random hex)."""
        experiment = await storage.get_experiment(experiment_id)
        self.check(experiment["namespace"])
        return experiment


UNLIMITED = Scope()
SCOPE_KEY = web.RequestKey("scope", Scope)


def request_scope(request: web.Request) -> Scope:
    return request.get(SCOPE_KEY, UNLIMITED)
