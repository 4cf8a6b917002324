"""The aiohttp application: configuration, storage lifecycle, middlewares and routes."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ml_dash.server.alerts.engine import AlertEngine
from ml_dash.server.alerts.rules import WebhookAllowList
from ml_dash.server.config import ServerConfig
from ml_dash.server.errors import DISK_FULL_MESSAGE, InsufficientStorage, ServerError, is_disk_full
from ml_dash.server.files.registry import open_file_store
from ml_dash.server.http.auth import auth_middleware
from ml_dash.server.http.batch_order import BatchOrder
from ml_dash.server.http.compression import compression_middleware
from ml_dash.server.http.dashboard import prepare_assets
from ml_dash.server.http.graphql import graphql_pool
from ml_dash.server.http.keys import ALERTS_KEY, BLOBS_KEY, CONFIG_KEY, DECODER_KEY, ORDER_KEY, STORAGE_KEY
from ml_dash.server.http.responses import json_response
from ml_dash.server.http.routes import ROUTES
from ml_dash.server.http.security import SECURITY_HEADERS, security_middleware
from ml_dash.server.ingest_pool import DecodePool, default_processes
from ml_dash.server.storage.base import Storage
from ml_dash.server.storage.registry import open_storage

log = logging.getLogger("ml_dash.server")


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Domain errors → their 4xx with ``{"error": message, ...}``; aiohttp's own 4xx (404 route, 413 body) as JSON too."""
    try:
        return await handler(request)
    except ServerError as exc:
        return await closing_if_unread(request, json_response({"error": exc.message, **exc.extra}, status=exc.status),
                                       exc.close_connection)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await closing_if_unread(request, json_response(
            {"error": exc.reason if exc.text is None else exc.text.removeprefix(f"{exc.status}: ")}, status=exc.status),
            exc.status == 413)
    except Exception as exc:
        if is_disk_full(exc):  # the transaction rolled back / the temporary blob is gone: nothing half-stored
            log.error("disk full on %s %s: %s", request.method, request.path, exc)
            response = json_response({"error": DISK_FULL_MESSAGE}, status=InsufficientStorage.status)
            response.headers["Retry-After"] = "30"  # the uploader retries 5xx; no need to hammer a full disk
            return await closing_if_unread(request, response, False)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return await closing_if_unread(request, json_response({"error": "internal server error"}, status=500), False)


async def closing_if_unread(request: web.Request, response: web.Response, close: bool) -> web.Response:
    """Close the connection after an error answer when asked to, or when the body was not read to its end.

    ``response.force_close()`` alone is not enough: aiohttp would still read (and inflate, if gzip) the rest of the
    body for up to 10 s ("lingering") before closing. So the answer is written here (with the security headers,
    which the outer middleware could no longer add), then the connection closed."""
    if close or (request.body_exists and not request.content.is_eof()):
        response.force_close()
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k not in response.headers})
        await response.prepare(request)
        await response.write_eof()
        if request.protocol is not None:
            request.protocol.force_close()  # flushes what was written, then closes; no lingering read
    return response


async def watch_heartbeats(storage: Storage, crash_after: float, clock: Callable[[], float] = time.time) -> None:
    """Mark CRASHED the runs whose heartbeats stopped (docs/distributed.md), every quarter of ``crash_after`` (at most
    30 s). One UPDATE in the database, idempotent: every worker process runs this loop and that is safe."""
    interval = min(crash_after / 4, 30.0)
    while True:
        # First a wait: a server that just started has clients still reconnecting (and a short-lived app, as in
        # tests, never touches the database from here).
        await asyncio.sleep(interval)
        try:
            marked = await storage.mark_crashed(clock(), crash_after)
            if marked:
                log.warning("%d run(s) marked CRASHED: no heartbeat for %gs", marked, crash_after)
        except NotImplementedError:
            return  # a storage without heartbeats (a test double)
        except Exception:  # noqa: BLE001  (a database hiccup must not end the watch)
            log.exception("the heartbeat watch failed; trying again")


def create_app(config: ServerConfig | None = None, storage: Storage | None = None) -> web.Application:
    """Build the app. ``storage`` overrides the backend named by ``config.db_url`` (tests parametrize it)."""
    config = config or ServerConfig()
    # Bodies are read by our handlers with our own limit (and a clear 413); aiohttp's limit is a backstop for others.
    app = web.Application(middlewares=[security_middleware(config), compression_middleware, error_middleware,
                                       auth_middleware(config.tokens)],
                          client_max_size=config.max_body_bytes)
    app[CONFIG_KEY] = config
    app[BLOBS_KEY] = open_file_store(config)
    app[ORDER_KEY] = BatchOrder()

    async def storage_lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[STORAGE_KEY] = storage or open_storage(config.db_url, config.sqlite_path, config.series_cache_mb,
                                                   config.sqlite_readers)
        app[STORAGE_KEY].query_timeout = config.query_timeout
        await app[STORAGE_KEY].open()
        # Other processes' stores wake this one's batches sent ahead (PostgreSQL); a no-op where not announced.
        await app[STORAGE_KEY].watch_batches(app[ORDER_KEY].stored, app[ORDER_KEY].live)
        yield
        await app[STORAGE_KEY].close()

    async def files_lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[BLOBS_KEY].open()
        yield
        await app[BLOBS_KEY].close()

    async def decoder_lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[DECODER_KEY] = DecodePool(default_processes() if config.ingest_processes is None
                                      else config.ingest_processes)
        yield
        app[DECODER_KEY].close()

    async def alerts_lifecycle(app: web.Application) -> AsyncIterator[None]:
        # Rules evaluated as batches land, the watchdog tick and webhook deliveries (docs/alerts.md).
        app[ALERTS_KEY] = AlertEngine(app[STORAGE_KEY], WebhookAllowList(config.alert_webhook_allow))
        await app[ALERTS_KEY].start()
        yield
        await app[ALERTS_KEY].stop()

    async def crash_watch(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(watch_heartbeats(app[STORAGE_KEY], config.crash_after))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(storage_lifecycle)
    app.cleanup_ctx.append(alerts_lifecycle)
    app.cleanup_ctx.append(crash_watch)
    app.cleanup_ctx.append(decoder_lifecycle)
    app.cleanup_ctx.append(files_lifecycle)
    app.cleanup_ctx.append(graphql_pool)
    app.cleanup_ctx.append(prepare_assets)
    app.add_routes(ROUTES)
    return app
