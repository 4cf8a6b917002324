"""Answer helpers shared by the REST, GraphQL and dashboard views."""
from __future__ import annotations

from typing import Any

import msgpack
import orjson
from aiohttp import web


def json_response(data: object, status: int = 200) -> web.Response:
    # orjson: fast for big metric series; numpy floats never reach here (results are plain lists).
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def respond(request: web.Request, data: Any, status: int = 200) -> web.Response:
    """JSON, or msgpack when the request's ``Accept`` asks for it (the ml-dash client does)."""
    if "application/msgpack" in request.headers.get("Accept", ""):
        return web.Response(body=msgpack.packb(data), status=status, content_type="application/msgpack")
    return json_response(data, status)
