"""Webhook deliveries: the bodies (generic JSON signed with HMAC-SHA256, Slack, Discord), one attempt's HTTP POST
within a timeout, and a resolver that refuses addresses the allow-list does not permit.

The generic body is signed when the rule has a secret: ``X-ML-Dash-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<X-ML-Dash-Timestamp>.<body>`` under the secret (docs/alerts.md shows how to check it), so a receiver can tell the
body came from this server and is not a replay of an old one.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from typing import Any, NamedTuple

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from ml_dash.format.retry import is_retryable_status, parse_retry_after
from ml_dash.server.alerts.rules import WebhookAllowList

SIGNATURE_HEADER = "X-ML-Dash-Signature"
TIMESTAMP_HEADER = "X-ML-Dash-Timestamp"
_COLOURS = {"INFO": 0x3B82F6, "WARNING": 0xF59E0B, "ERROR": 0xEF4444, "CRITICAL": 0x991B1B}
_DISCORD_CONTENT = 2000  # Discord refuses longer message content
_TEXT = 4000


class Outcome(NamedTuple):
    ok: bool
    http_status: int | None
    error: str | None
    retryable: bool
    retry_after: float | None
    seconds: float


def body(alert: dict[str, Any], rule: dict[str, Any], event: str) -> dict[str, Any]:
    """The JSON a rule's webhook gets for ``event`` ("fired" or "resolved") of ``alert``."""
    headline = ("RESOLVED " if event == "resolved" else "") + alert["title"] + (" (late)" if alert["late"] else "")
    text = (alert["text"] or "")[:_TEXT]
    if rule["webhook_format"] == "slack":
        return {"text": f"*{headline}*" + (f"\n{text}" if text else "")}
    if rule["webhook_format"] == "discord":
        return {"content": headline[:_DISCORD_CONTENT],
                "embeds": [{"title": headline[:256], "description": text[:_TEXT],
                            "color": 0x22C55E if event == "resolved" else _COLOURS.get(alert["level"], 0)}]}
    return {"event": event, "alert": {k: alert[k] for k in ("id", "namespace", "experiment_id", "run_id", "key",
                                                            "level", "title", "text", "late", "fired_at",
                                                            "resolved_at")},
            "rule": {"id": rule["id"], "name": rule["name"], "kind": rule["kind"]}}


def signature(secret: str, timestamp: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256).hexdigest()


def request(alert: dict[str, Any], rule: dict[str, Any], event: str, now: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery."""
    payload = orjson.dumps(body(alert, rule, event))
    headers = {"Content-Type": "application/json", "User-Agent": "ml-dash-alerts"}
    if rule["webhook_format"] == "generic" and rule.get("secret"):
        stamp = str(int(now))
        headers[TIMESTAMP_HEADER] = stamp
        headers[SIGNATURE_HEADER] = signature(rule["secret"], stamp, payload)
    return payload, headers


async def send(session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str],
               timeout: float) -> Outcome:
    """One attempt. Retryable as the uploader's requests are (format.retry): connection errors, timeouts, 408, 425,
    429, 5xx. Redirects are not followed: a 3xx could point the server at an address the allow-list refuses."""
    started = time.monotonic()
    try:
        async with session.post(url, data=payload, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
            await answer.read()
            status = answer.status
            if 200 <= status < 300:
                return Outcome(True, status, None, False, None, time.monotonic() - started)
            return Outcome(False, status, f"HTTP {status}", is_retryable_status(status),
                           parse_retry_after(answer.headers.get("Retry-After")), time.monotonic() - started)
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, RefusedAddress)  # never retried: the address will not become permitted
        return Outcome(False, None, str(exc.os_error if refused else exc)[:500], not refused, None,
                       time.monotonic() - started)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        # asyncio.TimeoutError is TimeoutError from 3.11; ClientError covers refused connections and DNS failures.
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500], True, None, time.monotonic() - started)


class RefusedAddress(OSError):  # aiohttp wraps a resolver's OSError in ClientConnectorError
    """A webhook host resolved to an address the allow-list does not permit."""


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses ``allow`` permits: a webhook named by a permitted host that
    resolves to 127.0.0.1 or 10.x (DNS rebinding, an internal name) is refused unless that network is listed."""

    def __init__(self, allow: WebhookAllowList) -> None:
        self.allow = allow
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        found = await self._inner.resolve(host, port, family)
        kept = [entry for entry in found if self.allow.allows_address(ipaddress.ip_address(entry["host"]))]
        if not kept:
            raise RefusedAddress(f"webhook host {host!r} resolves only to addresses ML_DASH_ALERT_WEBHOOK_ALLOW does "
                                 "not permit")
        return kept

    async def close(self) -> None:
        await self._inner.close()
