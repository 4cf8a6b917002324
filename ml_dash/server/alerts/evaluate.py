"""Metric rules evaluated on a batch's points: numpy over the batch's columns, never a scan of stored history.

Each check takes one series' new points (values, kinds, steps, times as arrays) and the state it kept for that series
(a rolling window's tail, when a value went below a line) and says where the condition first held in the batch and
whether it still holds at the batch's last point. The engine turns that into "fired" and "resolved". The work per
batch is bounded: at most ``MAX_EVAL_POINTS`` points of a series are looked at (the newest), and a rolling window
is at most ``rules.MAX_WINDOW`` points.
"""
from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ml_dash.format.layout import SYSTEM_PREFIX
from ml_dash.server.series.chunks import COLUMNS, decode_chunks
from ml_dash.server.series.types import VALUE_KIND_NULL

MAX_EVAL_POINTS = 10_000


class Points(NamedTuple):
    values: np.ndarray  # float64 (bools as 0/1)
    steps: np.ndarray  # float64, NaN where a point had no step
    times: np.ndarray  # float64, epoch seconds


@dataclass
class SeriesState:
    """What a rule keeps per (experiment, series) between batches."""

    firing: bool = False
    quiet_until: float = 0.0  # cooldown after a resolution: no new alert for this series before then
    tail: np.ndarray | None = None  # change/zscore: the last window of finite values
    below_since: float | None = None  # below: when the value went (and stayed) below the line


class Verdict(NamedTuple):
    first: int | None  # index of the first point where the condition held (None: nowhere in the batch)
    clear: bool  # the condition does not hold at the batch's last point
    detail: str  # what happened at ``first``, for the alert's text


def batch_points(chunk: Any) -> Points:
    """A ``series.chunks.EncodedChunk`` (one name of a ``MetricBatch``) as arrays, null points dropped, newest
    ``MAX_EVAL_POINTS`` only."""
    steps, values, kinds, times = decode_chunks([(*(getattr(chunk, c) for c in COLUMNS), chunk.codec)], COLUMNS)
    keep = kinds != VALUE_KIND_NULL
    if not keep.all():
        steps, values, times = steps[keep], values[keep], times[keep]
    return Points(values[-MAX_EVAL_POINTS:], steps[-MAX_EVAL_POINTS:], times[-MAX_EVAL_POINTS:])


@functools.lru_cache(maxsize=65536)
def watches(pattern: str, name: str) -> bool:
    """Whether a rule's ``metric`` (a name or glob) covers ``name``; system rows only when the pattern says so."""
    if name.startswith(SYSTEM_PREFIX) and not pattern.startswith(SYSTEM_PREFIX):
        return False
    return pattern == name or fnmatch.fnmatchcase(name, pattern)


def check(kind: str, params: dict[str, Any], points: Points, state: SeriesState) -> Verdict:
    return _CHECKS[kind](params, points, state)


def _at(points: Points, i: int) -> str:
    step = points.steps[i]
    return f"{points.values[i]:g}" + ("" if step != step else f" at step {int(step)}")


def _verdict(bad: np.ndarray, points: Points, what: str) -> Verdict:
    if not bad.any():  # the usual case, answered without building the index list
        return Verdict(None, True, "")
    hits = np.flatnonzero(bad)
    if not len(hits):
        return Verdict(None, True, "")
    first = int(hits[0])
    return Verdict(first, not bool(bad[-1]), f"{what}: {_at(points, first)}")


def _nonfinite(params: dict, points: Points, state: SeriesState) -> Verdict:
    return _verdict(~np.isfinite(points.values), points, "not finite")


_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


def _threshold(params: dict, points: Points, state: SeriesState) -> Verdict:
    with np.errstate(invalid="ignore"):
        bad = _OPS[params["op"]](points.values, params["value"])
    return _verdict(bad, points, f"{params['op']} {params['value']:g}")


def _history(points: Points, state: SeriesState, window: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The finite new values after the kept tail, the index (into ``points``) of each, and the tail's length; the
    tail is moved on to the newest ``window`` values."""
    finite = np.flatnonzero(np.isfinite(points.values))
    tail = state.tail if state.tail is not None else np.empty(0)
    joined = np.concatenate([tail, points.values[finite]])
    state.tail = joined[-window:].copy()
    return joined, finite, len(tail)


def _change(params: dict, points: Points, state: SeriesState) -> Verdict:
    window = params["window"]
    joined, index, kept = _history(points, state, window)
    if len(joined) <= window:
        return Verdict(None, True, "")
    new = np.arange(max(kept, window), len(joined))
    before, now = joined[new - window], joined[new]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(now - before) / np.abs(before) * 100.0
    change[(before == 0) & (now == before)] = 0.0
    bad = np.zeros(len(points.values), dtype=bool)
    bad[index[new - kept]] = change > params["percent"]
    verdict = _verdict(bad, points, f"changed by more than {params['percent']:g}% over {window} points")
    return Verdict(verdict.first, not bool(change[-1] > params["percent"]), verdict.detail)


def _zscore(params: dict, points: Points, state: SeriesState) -> Verdict:
    window = params["window"]
    joined, index, kept = _history(points, state, window)
    if len(joined) <= window:
        return Verdict(None, True, "")
    first_new = max(kept, window)
    # Each new point against the ``window`` values before it, from running sums: O(points), not O(points x window).
    # Centred on the first value so that large offsets (a loss near 1e6) do not cancel away the variance.
    centred = joined - joined[0]
    sums = np.concatenate([[0.0], np.cumsum(centred)])
    squares = np.concatenate([[0.0], np.cumsum(centred * centred)])
    ends = np.arange(first_new, len(joined))
    mean = (sums[ends] - sums[ends - window]) / window
    variance = np.maximum((squares[ends] - squares[ends - window]) / window - mean * mean, 0.0)
    std, now, mean = np.sqrt(variance), centred[first_new:], mean
    std[std < 1e-12 * (np.abs(mean) + np.abs(joined[0]) + 1.0)] = 0.0  # rounding noise of a constant window
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(now - mean) / std
    z[std == 0] = np.where(now[std == 0] == mean[std == 0], 0.0, np.inf)
    bad = np.zeros(len(points.values), dtype=bool)
    bad[index[np.arange(first_new, len(joined)) - kept]] = z > params["z"]
    verdict = _verdict(bad, points, f"|z| > {params['z']:g} against the previous {window} points")
    return Verdict(verdict.first, not bool(z[-1] > params["z"]), verdict.detail)


def _below(params: dict, points: Points, state: SeriesState) -> Verdict:
    line, span = params["value"], params["minutes"] * 60.0
    first = None
    for i, (value, at) in enumerate(zip(points.values.tolist(), points.times.tolist())):
        if value < line:
            if state.below_since is None:
                state.below_since = at
            if first is None and at - state.below_since >= span:
                first = i
        else:
            state.below_since = None
    clear = state.below_since is None
    if first is None:
        return Verdict(None, clear, "")
    return Verdict(first, clear, f"below {line:g} for {params['minutes']:g} minutes: {_at(points, first)}")


_CHECKS = {"nonfinite": _nonfinite, "threshold": _threshold, "change": _change, "zscore": _zscore, "below": _below}
METRIC_KINDS = frozenset(_CHECKS)
