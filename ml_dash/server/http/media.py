"""The media views (docs/media.md, docs/protocol.md): keys, items by step, an item's bytes or thumbnail, the steps of
a key, histograms as arrays and as a heatmap over steps. Reads only; media arrives as the ``media`` stream's batches
(``rest.append_batch``)."""
from __future__ import annotations

import asyncio

import numpy as np
from aiohttp import web

from ml_dash.format.media import CONTENT_TYPES
from ml_dash.server.http.inputs import authorized_experiment, int_query
from ml_dash.server.http.keys import BLOBS_KEY, STORAGE_KEY
from ml_dash.server.http.responses import respond
from ml_dash.server.http.security import SECURITY_HEADERS
from ml_dash.server.media.heatmap import heatmap

MAX_ITEMS = 1_000  # items per page
MAX_HISTOGRAMS = 200_000  # histograms one request reads (a 10k-step run's are 10k)
MAX_HEATMAP_CELLS = 4_000_000
_STEP = (-(2**63), 2**63 - 1)


def _steps(request: web.Request) -> tuple[int | None, int | None]:
    return int_query(request, "step_min", None, *_STEP), int_query(request, "step_max", None, *_STEP)


def _item_url(experiment_id: str, pk: int, thumbnail: bool) -> str:
    return f"/api/v1/experiments/{experiment_id}/media-items/{pk}" + ("?thumbnail=1" if thumbnail else "")


async def media_keys(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, {"keys": await request.app[STORAGE_KEY].media_keys(experiment["id"])})


async def media_items(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    key = request.match_info["key"]
    items, total = await request.app[STORAGE_KEY].media_items(
        experiment["id"], key, *_steps(request), int_query(request, "limit", 100, 1, MAX_ITEMS),
        int_query(request, "offset", 0, 0, 2**62))
    for item in items:
        item["url"] = _item_url(experiment["id"], item["pk"], False)
        item["thumbnail_url"] = _item_url(experiment["id"], item["pk"], item.pop("thumbnail"))
    return respond(request, {"key": key, "items": items, "total": total})


async def media_steps(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    key = request.match_info["key"]
    return respond(request, {"key": key, "steps": await request.app[STORAGE_KEY].media_steps(experiment["id"], key)})


async def media_item(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    pk = _pk(request)
    thumbnail = request.query.get("thumbnail") in ("1", "true")
    sha256, offset, length, fmt, _kind = await request.app[STORAGE_KEY].media_blob(experiment["id"], pk, thumbnail)
    data = await request.app[BLOBS_KEY].read_range(sha256, offset, length)
    content_type = "image/png" if thumbnail else CONTENT_TYPES.get(fmt, "application/octet-stream")
    # Immutable: an item's bytes never change once stored, so the browser keeps them.
    return web.Response(body=data, headers={"Content-Type": content_type, "Cache-Control": "private, max-age=31536000",
                                            **SECURITY_HEADERS})


def _pk(request: web.Request) -> int:
    raw = request.match_info["pk"]
    if not raw.isdigit() or len(raw) > 18:
        from ml_dash.server.errors import BadRequest

        raise BadRequest("the media item id must be a non-negative integer")
    return int(raw)


async def histograms(request: web.Request) -> web.Response:
    """``{"key", "steps", "edges", "counts", "total"}``: one histogram per step in the range (``limit``, default
    10,000; ``total`` says how many matched)."""
    experiment = await authorized_experiment(request)
    key = request.match_info["key"]
    rows, total = await request.app[STORAGE_KEY].media_histograms(
        experiment["id"], key, *_steps(request), int_query(request, "limit", 10_000, 1, MAX_HISTOGRAMS))

    def arrays() -> dict:
        return {"key": key, "total": total, "steps": [r[0] for r in rows],
                "edges": [np.frombuffer(r[1], "<f8").tolist() for r in rows],
                "counts": [np.frombuffer(r[2], "<f8").tolist() for r in rows]}

    return respond(request, await asyncio.to_thread(arrays))


async def histogram_heatmap(request: web.Request) -> web.Response:
    """The histograms of a step range as a ``columns`` x ``bins`` matrix (``server.media.heatmap``)."""
    experiment = await authorized_experiment(request)
    key = request.match_info["key"]
    columns = int_query(request, "columns", 1000, 1, 10_000)
    bins = int_query(request, "bins", 64, 1, 1_000)
    if columns * bins > MAX_HEATMAP_CELLS:
        from ml_dash.server.errors import BadRequest

        raise BadRequest(f"columns x bins is at most {MAX_HEATMAP_CELLS}")
    rows, total = await request.app[STORAGE_KEY].media_histograms(experiment["id"], key, *_steps(request),
                                                                   MAX_HISTOGRAMS)
    answer = await asyncio.to_thread(heatmap, rows, columns, bins)
    return respond(request, {"key": key, "total": total, **answer})
