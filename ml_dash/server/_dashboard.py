"""The web dashboard: a single-page app at ``/`` plus its static assets.

The UI is plain HTML/CSS/JS under ``static/`` (no build step) and reads through ``/graphql`` and the REST reads of
``/api/v1``; live pages poll the cheap ``/streams`` offsets, which move whenever any batch lands. Its one endpoint of
its own maps steps to wall time for the time axis (series answers carry steps only, to stay fast). The chart library
is the ``plotly.min.js`` shipped inside the installed ``plotly`` Python package: served from there, never copied into
this repository.
"""
from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from ._app import STORAGE_KEY, json_response
from ._errors import BadRequest, NotFound

STATIC_DIR = Path(__file__).parent / "static"
PLOTLY_URL = "/static/vendor/plotly.min.js"


def plotly_js_path() -> Path | None:
    """Where the installed ``plotly`` package keeps its bundled ``plotly.min.js`` (None when it is not installed)."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(os.path.dirname(plotly.__file__)) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


async def index(request: web.Request) -> web.StreamResponse:
    # no-cache: a new release's index.html must reach browsers that still hold the old one.
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def plotly_js(request: web.Request) -> web.StreamResponse:
    path = plotly_js_path()
    if path is None:
        return web.Response(status=404, text="plotly is not installed: pip install 'ml-dash[server]'\n",
                            content_type="text/plain")
    # 4.8 MB: let the browser keep it for a day instead of re-downloading it on every page load.
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


MAX_STEP_TIMES = 10_000


async def metric_step_times(request: web.Request) -> web.Response:
    """``GET /api/v1/experiments/{id}/step-times?name=&max_points=`` → ``{"steps": [...], "timestamps": [...]}``.

    A few thousand (step, timestamp) anchors are enough to place every drawn point on a wall-time axis by
    interpolation, and to turn a zoomed time window back into the step range that ``metric`` filters on.
    """
    from ._routes import authorized_experiment, int_query

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


def setup_dashboard(app: web.Application) -> None:
    app.router.add_get("/api/v1/experiments/{experiment_id}/step-times", metric_step_times)
    app.router.add_get("/", index)
    # Registered before the static resource so that it wins the /static/ prefix for this one path.
    app.router.add_get(PLOTLY_URL, plotly_js)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
