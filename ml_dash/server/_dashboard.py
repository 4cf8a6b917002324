"""The web dashboard: a single-page app at ``/`` plus its static assets.

The UI is plain HTML/CSS/JS under ``static/`` (no build step) and reads everything through ``/graphql`` and the REST
reads of ``/api/v1``; live pages poll the cheap ``/streams`` offsets, which move whenever any batch lands, so the
dashboard needs no endpoints of its own. The chart library is the ``plotly.min.js`` shipped inside the installed
``plotly`` Python package: served from there, never copied into this repository.
"""
from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

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


def setup_dashboard(app: web.Application) -> None:
    app.router.add_get("/", index)
    # Registered before the static resource so that it wins the /static/ prefix for this one path.
    app.router.add_get(PLOTLY_URL, plotly_js)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
