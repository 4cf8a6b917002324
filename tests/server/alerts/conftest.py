"""A real webhook receiver on loopback (aiohttp), and helpers that make alert rules through GraphQL."""
from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web

from ml_dash.server.http.keys import ALERTS_KEY

LOOPBACK_ALLOWED = ("127.0.0.1/32",)


class Receiver:
    """Collects each webhook request (path, headers, raw body); ``status`` is what it answers."""

    def __init__(self) -> None:
        self.received: asyncio.Queue = asyncio.Queue()
        self.status = 200
        self.url = ""
        self.hits = 0
        self.entered = asyncio.Event()  # a request arrived (before it is answered)
        self.gate = asyncio.Event()  # cleared: requests hang until it is set
        self.gate.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.entered.set()
        await self.gate.wait()
        raw = await request.read()
        await self.received.put({"path": request.path, "headers": dict(request.headers), "raw": raw,
                                 "json": orjson.loads(raw)})
        return web.Response(status=self.status)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.received.get(), timeout)


@pytest.fixture
async def receiver(aiohttp_server):
    found = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", found.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    found.url = f"http://127.0.0.1:{server.port}/hook"
    return found


async def graphql(client, query: str, variables: dict | None = None, headers=None, status: int = 200) -> dict:
    answer = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    body = await answer.json()
    assert answer.status == status, body
    return body


CREATE = """mutation($rule: JSON!) { createAlertRule(rule: $rule) { id name kind webhookUrl hasSecret params } }"""


async def create_rule(client, receiver_url: str, kind: str, params: dict | None = None, namespace: str = "alice",
                      headers=None, **extra) -> dict:
    rule = {"namespace": namespace, "kind": kind, "params": params or {}, "name": f"{kind} rule",
            "webhook": {"url": receiver_url, **extra.pop("webhook", {})}, **extra}
    body = await graphql(client, CREATE, {"rule": rule}, headers=headers)
    assert "errors" not in body, body
    return body["data"]["createAlertRule"]


def engine(client):
    return client.server.app[ALERTS_KEY]
