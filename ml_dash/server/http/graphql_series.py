"""``Query.seriesBatch``: one metric of many experiments (a workspace chart overlays up to ~1,000 runs) in one request.

Each experiment's series is downsampled the way ``Experiment.metric`` is (min/max per bucket, so no spike is lost),
to ``maxPoints`` buckets; with ``x: "time"`` every kept point also gets its wall-clock time, interpolated from the
series' step-time anchors, so a wall-time or relative-time axis needs no second round of requests. The answer is
aligned with ``experimentIds``: ``null`` where an experiment is unknown or has no metric of that name. An id in a
namespace outside the token's reach fails the field (403), as ``experiment(id)`` does.

Bounded work: at most ``MAX_SERIES_BATCH`` ids and ``MAX_POINTS`` buckets, priced before the query runs
(``graphql_cost``: ``SERIES_BATCH_READ_COST`` per id plus its point lists), reads go through the query's own gate
(``graphql._OnLoop``), and the downsampling runs in the GraphQL worker thread, not on the server's loop.
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from ml_dash.server.errors import BadRequest, NotFound
from ml_dash.server.http.graphql_cost import DEFAULT_BATCH_POINTS, MAX_POINTS, MAX_SERIES_BATCH
from ml_dash.server.http.scope import Scope
from ml_dash.server.http.series_encoding import ENCODINGS, compact_result, encode
from ml_dash.server.series.downsample import Envelope, minmax_indices, series_result

X_MODES = ("step", "time")
# Overlaid values are drawn, not read off: 7 significant digits (float32's precision) keep every pixel and halve the
# answer (an overlay of 1,000 runs carries ~400,000 values; Experiment.metric still answers them exactly).
SIGNIFICANT_DIGITS = 7
STEP_TIME_ANCHORS = 2000  # as many (step, time) pairs as the dashboard's own step-times read uses


def series_batch_resolver(storage: Any, scope: Scope):
    async def series_batch(info, experimentIds, name, maxPoints=DEFAULT_BATCH_POINTS, x="step", stepMin=None,
                           stepMax=None, encoding="json"):
        max_points = DEFAULT_BATCH_POINTS if maxPoints is None else maxPoints
        x, encoding = x or "step", encoding or "json"
        if not 1 <= len(experimentIds) <= MAX_SERIES_BATCH:
            raise BadRequest(f"experimentIds must name 1 to {MAX_SERIES_BATCH} experiments "
                             f"(got {len(experimentIds)})")
        if not 1 <= max_points <= MAX_POINTS:
            raise BadRequest(f"maxPoints must be at least 1 and at most {MAX_POINTS} "
                             f"(default {DEFAULT_BATCH_POINTS})")
        if x not in X_MODES:
            raise BadRequest(f"x must be one of {', '.join(X_MODES)} (got {x!r})")
        if encoding not in ENCODINGS:
            raise BadRequest(f"encoding must be one of {', '.join(ENCODINGS)} (got {encoding!r})")
        # The storage gate bounds how many of these reads are in flight; gather only keeps the answer's order.
        steps = (stepMin, stepMax)  # a zoomed chart: the same step range of every run
        return await asyncio.gather(*(_one(storage, scope, i, name, max_points, x == "time", steps, encoding)
                                      for i in experimentIds))

    return series_batch


async def _one(storage: Any, scope: Scope, experiment_id: str, name: str, max_points: int,
               with_times: bool, steps: tuple[float | None, float | None], encoding: str) -> dict[str, Any] | None:
    try:
        if scope.limited:  # only a namespace-limited token needs the experiment record: one read less per run
            await scope.experiment(storage, experiment_id)
        series = await storage.metric_series(experiment_id, name, *steps, max_points)
    except NotFound:
        return None
    if series is None:
        return None
    if encoding == "base64":
        result, places = compact_result(name, series, max_points)
        result["experimentId"] = experiment_id
        times = await _times(storage, experiment_id, name, places) if with_times else None
        result["times"] = None if times is None else encode(times, "f8")
        return result
    result = series_result(name, series, max_points, nonfinite_as_text=False)
    result["values"] = _rounded(result["values"])
    result["experimentId"] = experiment_id
    times = (await _times(storage, experiment_id, name, _places(series, result["steps"], max_points))
             if with_times else None)
    result["times"] = None if times is None else [None if t != t else t for t in times.tolist()]
    return result


def _places(series: Any, steps: list, max_points: int) -> list:
    """Where each kept point sits on the step-time anchors' axis: its step, or, for a series logged without steps
    (W&B's habit), its position in log order, which is what the anchors of such a series map to times
    (``series.chunks.step_time_anchors``). Without this a stepless series had no times and no wall-time axis."""
    if not steps or any(s is not None for s in steps):
        return steps
    if isinstance(series, Envelope):  # from block summaries: the kept positions are not known, spread them evenly
        last = series.count - 1
        return [round(i * last / max(1, len(steps) - 1)) for i in range(len(steps))]
    return minmax_indices(series.values, max_points).tolist()  # the same points series_result kept


async def _times(storage: Any, experiment_id: str, name: str, steps: list | np.ndarray) -> np.ndarray | None:
    try:
        anchors = await storage.metric_step_times(experiment_id, name, STEP_TIME_ANCHORS)
    except NotImplementedError:
        return None
    if anchors is None or len(anchors[0]) == 0:
        return None
    anchor_steps, anchor_times = anchors
    wanted = steps if isinstance(steps, np.ndarray) else np.array([np.nan if s is None else s for s in steps],
                                                                     dtype=np.float64)
    return np.interp(wanted, anchor_steps.astype(np.float64), anchor_times.astype(np.float64))  # NaN stays NaN


def _rounded(values: list) -> list:
    """``values`` to ``SIGNIFICANT_DIGITS`` significant digits, so each one's shortest repr is short; None stays."""
    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(array == 0, 0, np.floor(np.log10(np.abs(array))))
        scale = 10.0 ** (SIGNIFICANT_DIGITS - 1 - np.nan_to_num(magnitude))
        out = np.round(array * scale) / scale
        out = np.where(np.isfinite(out), out, array)  # subnormals, whose scale overflows, stay as they are
    return [None if v != v else v for v in out.tolist()]
