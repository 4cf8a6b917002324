"""Answer helpers shared by the REST, GraphQL and dashboard views."""
from __future__ import annotations

import orjson
from aiohttp import web


def json_response(data: object, status: int = 200) -> web.Response:
    # orjson: fast for big metric series; numpy floats never reach here (results are plain lists).
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
