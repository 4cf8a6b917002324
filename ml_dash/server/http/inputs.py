"""What a REST view reads from its request besides the body (``body.py``): the experiment named in the URL (within
the token's scope), integer query parameters, and the field validator with this server's limits."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ml_dash.server.errors import BadRequest
from ml_dash.server.http.keys import CONFIG_KEY, STORAGE_KEY
from ml_dash.server.http.scope import request_scope
from ml_dash.server.ingest import Validator


def validator(request: web.Request) -> Validator:
    config = request.app[CONFIG_KEY]
    return Validator(config.max_name_length, config.max_events, config.max_body_items)


async def authorized_experiment(request: web.Request) -> dict[str, Any]:
    """The experiment named in the URL, after checking the token may see its namespace."""
    return await request_scope(request).experiment(request.app[STORAGE_KEY], request.match_info["experiment_id"])


def int_query(request: web.Request, key: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {key!r} must be an integer") from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {key!r} must be between {lo} and {hi}")
    return value
