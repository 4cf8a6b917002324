"""The URL table (ml_dash/server/http/routes.py) is what the app serves, and docs/protocol.md documents all of it."""
from __future__ import annotations

import re
from pathlib import Path

from ml_dash.server import ServerConfig, create_app
from ml_dash.server.http.routes import ROUTES

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
# A code span that starts with a method and a path: `GET /api/v1/experiments?namespace=` or `PUT /api/.../{path}`.
DOCUMENTED = re.compile(r"`(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^`\s?]*)")


def _normal(method: str, path: str) -> tuple[str, str]:
    """Path parameters compared by position only: ``{id}``, ``{experiment_id}`` and ``{name:.+}`` are one slot."""
    return method, re.sub(r"\{[^}]*\}", "{}", path)


def table() -> set[tuple[str, str]]:
    return {_normal(route.method, route.path) for route in ROUTES}


def documented() -> set[tuple[str, str]]:
    return {_normal(method, path) for method, path in DOCUMENTED.findall(PROTOCOL_MD.read_text(encoding="utf-8"))}


def test_every_route_is_documented():
    assert table() - documented() == set(), "routes missing from docs/protocol.md"


def test_every_documented_endpoint_exists():
    assert documented() - table() == set(), "docs/protocol.md names endpoints the server does not have"


def test_the_app_serves_exactly_the_table(tmp_path):
    """create_app registers the table and nothing else (a GET also answers HEAD, as aiohttp adds it)."""
    app = create_app(ServerConfig(data_dir=str(tmp_path)))
    served = {(route.method, route.resource.canonical) for route in app.router.routes() if route.method != "HEAD"}
    assert len(ROUTES) == len(table()), "a route is listed twice"
    assert {_normal(*route) for route in served} == table()
    heads = {route.resource.canonical for route in app.router.routes() if route.method == "HEAD"}
    assert heads == {path for method, path in served if method == "GET"}


def test_health_answers_the_documented_protocol_number_and_streams():
    import json

    from ml_dash.format.layout import STREAMS
    from ml_dash.server.http.rest import PROTOCOL

    answer = json.dumps({"ok": True, "protocol": PROTOCOL, "streams": list(STREAMS)}, separators=(", ", ": "))
    assert f"`GET /health` → `{answer}`" in PROTOCOL_MD.read_text(encoding="utf-8")
