"""The web dashboard: a single-page app at ``/`` plus its static assets.

The UI is plain HTML/CSS/JS under ``static/`` (no build step) and reads through ``/graphql`` and the REST reads of
``/api/v1``; live pages poll the cheap ``/streams`` offsets, which move whenever any batch lands. Its one endpoint of
its own maps steps to wall time for the time axis (series answers carry steps only, to stay fast). The chart library
is plotly.js: its basic bundle when set-up fetched it from npm (pinned and hash-checked, see
``_chart_library``), else the ``plotly.min.js`` shipped inside the installed ``plotly`` Python
package. Neither is committed to this repository.

Static files are served from memory: read once (again when the file's size or mtime changes), gzipped once for
clients that accept it (full plotly.min.js: 4.8 MB → 1.5 MB; basic bundle 1.2 MB → 0.4 MB), with a strong ETag so a reload costs a 304.
"""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ml_dash.server import chart_library
from ml_dash.server.errors import BadRequest, NotFound
from ml_dash.server.http.keys import CONFIG_KEY, STORAGE_KEY
from ml_dash.server.http.responses import json_response
from ml_dash.server.http.inputs import authorized_experiment, int_query

STATIC_DIR = Path(__file__).parent.parent / "static"
PLOTLY_URL = "/static/vendor/plotly.min.js"
BASIC_BUNDLE = Path(chart_library.BUNDLE)  # git-ignored: fetched at set-up time

# index.html and the app files have fixed URLs: a new release must reach browsers that hold the old one, so they are
# revalidated on every load (a 304 while unchanged). plotly changes only with the installed package: keep it a day.
APP_CACHE_CONTROL = "no-cache"
PLOTLY_CACHE_CONTROL = "public, max-age=86400"
GZIP_LEVEL = 6
MIN_GZIP_BYTES = 512
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")


def plotly_js_path(chart_js: str | None = None) -> Path | None:
    """The chart library served at ``PLOTLY_URL``, first found of: ``chart_js`` (``--chart-js``); plotly.js's basic
    bundle fetched at set-up time (``ml-dash server fetch-chart-library``: 1.2 MB, ~0.2 s to start in Chromium on a
    first visit); the full ``plotly.min.js`` inside the installed ``plotly`` package (4.8 MB, ~1 s). ``None`` when
    there is none."""
    if chart_js:
        path = Path(chart_js)
        return path if path.is_file() else None
    if BASIC_BUNDLE.is_file():
        return BASIC_BUNDLE
    return full_plotly_js_path()


def full_plotly_js_path() -> Path | None:
    """Where the installed ``plotly`` package keeps its bundled ``plotly.min.js`` (None when it is not installed)."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(os.path.dirname(plotly.__file__)) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@dataclass(frozen=True)
class _Asset:
    stamp: tuple[int, int]  # (size, mtime_ns) of the file these bytes were read from
    body: bytes
    gzipped: bytes | None  # None when compressing would not pay (tiny or already-compressed types)
    content_type: str
    etag: str  # quoted strong validator of the identity bytes; the gzip variant gets a "-gz" suffix


_assets: dict[Path, _Asset] = {}
ASSETS_PREPARED_KEY = web.AppKey("assets_prepared", asyncio.Task)
_asset_locks: dict[Path, asyncio.Lock] = {}


def _read_asset(path: Path, stamp: tuple[int, int]) -> _Asset:
    body = path.read_bytes()
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js":
        content_type = "application/javascript"
    gzipped = None
    if len(body) >= MIN_GZIP_BYTES and content_type.startswith(COMPRESSIBLE):
        gzipped = gzip.compress(body, GZIP_LEVEL, mtime=0)
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return _Asset(stamp, body, gzipped, content_type, etag)


async def _asset(path: Path) -> _Asset:
    """The cached bytes of ``path``, read and gzipped off the event loop on first use (and after the file changes)."""
    try:
        info = path.stat()
    except OSError:
        raise web.HTTPNotFound() from None
    stamp = (info.st_size, info.st_mtime_ns)
    cached = _assets.get(path)
    if cached is not None and cached.stamp == stamp:
        return cached
    lock = _asset_locks.setdefault(path, asyncio.Lock())
    async with lock:  # concurrent first requests share one read + compress
        cached = _assets.get(path)
        if cached is None or cached.stamp != stamp:
            cached = _assets[path] = await asyncio.to_thread(_read_asset, path, stamp)
    return cached


def _accepts_gzip(request: web.Request) -> bool:
    for item in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


async def send_asset(request: web.Request, path: Path, cache_control: str) -> web.Response:
    asset = await _asset(path)
    use_gzip = asset.gzipped is not None and _accepts_gzip(request)
    etag = asset.etag[:-1] + '-gz"' if use_gzip else asset.etag
    headers = {"Cache-Control": cache_control, "ETag": etag}
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if_none_match = request.headers.get("If-None-Match", "")
    if if_none_match.strip() == "*" or etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(",")):
        return web.Response(status=304, headers=headers)
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    body = asset.gzipped if use_gzip else asset.body  # aiohttp leaves the body out of a HEAD answer itself
    return web.Response(body=body, headers=headers, content_type=asset.content_type)


async def index(request: web.Request) -> web.StreamResponse:
    return await send_asset(request, STATIC_DIR / "index.html", APP_CACHE_CONTROL)


async def static_file(request: web.Request) -> web.StreamResponse:
    relative = request.match_info["path"]
    path = (STATIC_DIR / relative).resolve()
    if STATIC_DIR.resolve() not in path.parents or not path.is_file():
        raise web.HTTPNotFound()
    return await send_asset(request, path, APP_CACHE_CONTROL)


async def plotly_js(request: web.Request) -> web.StreamResponse:
    path = plotly_js_path(request.app[CONFIG_KEY].chart_js)
    if path is None:
        return web.Response(status=404, text="plotly is not installed: pip install 'ml-dash[server]'\n",
                            content_type="text/plain")
    return await send_asset(request, path, PLOTLY_CACHE_CONTROL)


MAX_STEP_TIMES = 10_000


async def metric_step_times(request: web.Request) -> web.Response:
    """``GET /api/v1/experiments/{id}/step-times?name=&max_points=`` → ``{"steps": [...], "timestamps": [...]}``.

    A few thousand (step, timestamp) anchors are enough to place every drawn point on a wall-time axis by
    interpolation, and to turn a zoomed time window back into the step range that ``metric`` filters on.
    """
    experiment = await authorized_experiment(request)
    name = request.query.get("name")
    if not name:
        raise BadRequest("query parameter 'name' is required")
    max_points = int_query(request, "max_points", 2000, 1, MAX_STEP_TIMES)
    try:
        found = await request.app[STORAGE_KEY].metric_step_times(experiment["id"], name, max_points)
    except NotImplementedError:
        raise BadRequest("this storage backend cannot report metric timestamps") from None
    if found is None:
        raise NotFound(f"experiment has no metric named {name!r}")
    steps, timestamps = found
    return json_response({"steps": steps.tolist(), "timestamps": timestamps.tolist()})


async def prepare_assets(app: web.Application):
    """Read and gzip the static assets in the background at start-up, so that the first visitor's page does not pay
    for compressing plotly.min.js (~150 ms of CPU) while its chart data requests are being answered."""
    async def prepare() -> None:
        paths = sorted(path for path in STATIC_DIR.rglob("*") if path.is_file() and "vendor" not in path.parts)
        plotly_path = plotly_js_path(app[CONFIG_KEY].chart_js)
        if plotly_path is not None:
            paths.append(plotly_path)
        for path in paths:
            try:
                await _asset(path)
            except web.HTTPNotFound:
                pass

    task = app[ASSETS_PREPARED_KEY] = asyncio.create_task(prepare(), name="ml-dash-prepare-assets")
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass

