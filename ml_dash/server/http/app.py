"""The aiohttp application: configuration, storage lifecycle, middlewares and routes."""
from __future__ import annotations

import logging
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ml_dash.server.config import ServerConfig
from ml_dash.server.errors import BrokenBody, ServerError
from ml_dash.server.files.registry import open_file_store
from ml_dash.server.http.auth import auth_middleware
from ml_dash.server.http.dashboard import setup_dashboard
from ml_dash.server.http.graphql import setup_graphql
from ml_dash.server.http.keys import BLOBS_KEY, CONFIG_KEY, STORAGE_KEY
from ml_dash.server.http.responses import json_response
from ml_dash.server.http.rest import setup_routes
from ml_dash.server.http.security import security_middleware
from ml_dash.server.storage.base import Storage
from ml_dash.server.storage.registry import open_storage

log = logging.getLogger("ml_dash.server")


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Domain errors → their 4xx with ``{"error": message, ...}``; aiohttp's own 4xx (404 route, 413 body) as JSON too."""
    try:
        return await handler(request)
    except ServerError as exc:
        response = json_response({"error": exc.message, **exc.extra}, status=exc.status)
        if isinstance(exc, BrokenBody):
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response({"error": exc.reason if exc.text is None else exc.text.removeprefix(f"{exc.status}: ")},
                             status=exc.status)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return json_response({"error": "internal server error"}, status=500)


def create_app(config: ServerConfig | None = None, storage: Storage | None = None) -> web.Application:
    """Build the app. ``storage`` overrides the backend named by ``config.db_url`` (tests parametrize it)."""
    config = config or ServerConfig()
    # Bodies are read by our handlers with our own limit (and a clear 413); aiohttp's limit is a backstop for others.
    app = web.Application(middlewares=[security_middleware(config), error_middleware, auth_middleware(config.tokens)],
                          client_max_size=config.max_body_bytes)
    app[CONFIG_KEY] = config
    app[BLOBS_KEY] = open_file_store(config)

    async def storage_lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[STORAGE_KEY] = storage or open_storage(config.db_url, config.sqlite_path)
        await app[STORAGE_KEY].open()
        yield
        await app[STORAGE_KEY].close()

    async def files_lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[BLOBS_KEY].open()
        yield
        await app[BLOBS_KEY].close()

    app.cleanup_ctx.append(storage_lifecycle)
    app.cleanup_ctx.append(files_lifecycle)
    setup_routes(app)
    setup_graphql(app)
    setup_dashboard(app)
    return app
