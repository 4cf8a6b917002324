"""Min/max-per-bucket downsampling: a chart of N buckets that still shows every spike.

Points are split into at most ``max_points`` buckets of consecutive points (in step order). Each bucket keeps the
point with its smallest and the point with its largest value, in their original order, so up to ``2 * max_points``
points come back. A bucket holding only null/NaN values keeps its first point so gaps stay visible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml_dash.format.values import nonfinite_text
from ml_dash.server.series.chunks import BLOCK, SUMMARY_DTYPE
from ml_dash.server.series.types import VALUE_KIND_NAN, VALUE_KIND_NUMBER, Series

_BLOCK = 1 << 18
# A downsampled read is answered from block summaries (``envelope``) when a bucket spans at least this many blocks.
MIN_BLOCKS_PER_BUCKET = 4


@dataclass(frozen=True)
class Envelope:
    """A range already downsampled from block summaries: the kept points in step order, plus what ``series_result``
    would have computed from all of them (``count``, finite ``min``/``max``)."""

    steps: np.ndarray
    values: np.ndarray
    kinds: np.ndarray
    count: int
    min: float | None
    max: float | None


def use_summaries(count: int, max_points: int | None) -> bool:
    """Whether ``count`` points in ``max_points`` buckets are wide enough for the summary path."""
    return max_points is not None and count >= max_points * MIN_BLOCKS_PER_BUCKET * BLOCK


def envelope(parts: list[tuple[np.ndarray, int]], count: int, max_points: int) -> Envelope:
    """Min/max buckets of a range of ``count`` points from the block summaries of its consecutive pieces (chunks, or
    the in-range slice of an edge chunk): ``(records, offset)``, ``records`` of ``SUMMARY_DTYPE`` with positions
    relative to the piece, ``offset`` the position of the piece's first point in the range; pieces in step order.

    Buckets are the same ``max_points`` runs of consecutive points as ``minmax_indices``. Each block's min point and
    max point go to the bucket that holds that point, and a bucket keeps the smallest and the largest of what it got
    (ties: the first). Every answer point is a stored point, and the range's extremes always survive (each is its
    block's extreme, hence its bucket's); the approximation is only that a bucket's own extreme can be missed when
    it lies in a block that straddles the bucket edge and whose extreme is on the other side. A bucket that got no
    number (only null/NaN in its blocks) keeps the first point of the first block starting in it, so gaps show.
    """
    records = np.concatenate([r for r, _ in parts]) if parts else np.zeros(0, SUMMARY_DTYPE)
    offsets = np.concatenate([np.full(len(r), off, np.int64) for r, off in parts]) if parts else np.zeros(0, np.int64)
    starts = offsets + (np.concatenate([np.arange(len(r), dtype=np.int64) * BLOCK for r, _ in parts]) if parts
                        else np.zeros(0, np.int64))
    width, wide = divmod(count, max_points)
    split = wide * (width + 1)

    def bucket(pos: np.ndarray) -> np.ndarray:
        return np.where(pos < split, pos // (width + 1), wide + (pos - split) // max(width, 1))

    has = records["lo_pos"] >= 0
    pos_parts, step_parts, value_parts, kind_parts = [], [], [], []
    covered = np.zeros(max_points, bool)
    for side, sign in (("lo", 1.0), ("hi", -1.0)):
        pos = offsets[has] + records[side + "_pos"][has]
        values = records[side + "_value"][has]
        b = bucket(pos)
        order = np.lexsort((pos, sign * values, b))  # by bucket, then best value, then first position
        b_sorted = b[order]
        first = order[np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])] if len(order) else order
        covered[b[first]] = True
        pos_parts.append(pos[first])
        step_parts.append(records[side + "_step"][has][first])
        value_parts.append(values[first])
        kind_parts.append(np.full(len(first), VALUE_KIND_NUMBER, np.int8))
    if not covered.all() and len(records):
        b = bucket(starts)
        fresh = np.flatnonzero(~covered[b] & np.r_[True, b[1:] != b[:-1]])  # first block starting in an empty bucket
        pos_parts.append(starts[fresh])
        step_parts.append(records["first_step"][fresh])
        value_parts.append(records["first_value"][fresh])
        kind_parts.append(records["first_kind"][fresh])
    pos = np.concatenate(pos_parts)
    keep_pos, keep = np.unique(pos, return_index=True)
    fin_lo, fin_hi = np.fmin.reduce(records["fin_lo"]) if len(records) else np.nan, \
        np.fmax.reduce(records["fin_hi"]) if len(records) else np.nan
    return Envelope(np.concatenate(step_parts)[keep], np.concatenate(value_parts)[keep],
                    np.concatenate(kind_parts)[keep].astype(np.int8), count,
                    None if np.isnan(fin_lo) else float(fin_lo), None if np.isnan(fin_hi) else float(fin_hi))


def minmax_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices (ascending) of the points to keep from ``values`` (float64, NaN = no number)."""
    n = len(values)
    if max_points <= 0:
        raise ValueError("max_points must be positive")
    if n <= max_points:
        return np.arange(n)
    # max_points buckets of consecutive points: the first n % max_points are one point wider. Each group of equal
    # width is a 2-D view of ``values``, so argmin/argmax run along rows without copying or a Python loop.
    width, wide = divmod(n, max_points)
    split = wide * (width + 1)
    kept = [_bucket_extremes(values[:split].reshape(wide, width + 1), 0),
            _bucket_extremes(values[split:].reshape(max_points - wide, width), split)]
    return np.unique(np.concatenate(kept))


def _bucket_extremes(rows: np.ndarray, offset: int) -> np.ndarray:
    """Per row, the positions (plus ``offset``) of its min and max number; a row of only NaN keeps its first point."""
    if rows.size == 0:
        return np.empty(0, np.int64)
    starts = offset + np.arange(len(rows), dtype=np.int64) * rows.shape[1]
    low, high = rows.argmin(axis=1), rows.argmax(axis=1)
    # argmin/argmax stop at a row's first NaN. Only such rows are searched again: fmin/fmax skip NaN, and the first
    # point equal to the result is the extreme. A row of only NaN matches nowhere and so keeps its first point.
    bad = np.flatnonzero(np.isnan(rows[np.arange(len(rows)), low]))
    # In slices of about _BLOCK values: large fresh temporaries cost more in page faults here than the math.
    step = max(1, _BLOCK // rows.shape[1])
    for first in range(0, len(bad), step):
        which = bad[first:first + step]
        sub = rows[which]
        low[which] = (sub == np.fmin.reduce(sub, axis=1)[:, None]).argmax(axis=1)
        high[which] = (sub == np.fmax.reduce(sub, axis=1)[:, None]).argmax(axis=1)
    return np.concatenate([starts + low, starts + high])


def series_result(name: str, series: Series, max_points: int | None, nonfinite_as_text: bool) -> dict:
    """Shape a ``Series`` for an answer: ``{name, count, steps, values, min, max}``.

    ``count`` is the number of stored points in the range; ``min``/``max`` are over its finite values. JSON has no
    NaN/Infinity: REST answers use the JSONL spellings ("NaN", "Infinity", "-Infinity"), GraphQL (whose Float cannot
    carry them) answers null.
    """
    values = series.values
    if isinstance(series, Envelope):  # already downsampled (from block summaries), with its count/min/max
        keep = slice(None)
    else:
        keep = minmax_indices(values, max_points) if max_points is not None else slice(None)
    kept_values, kept_kinds = values[keep], series.kinds[keep]
    out_values = kept_values.tolist()
    for i in np.flatnonzero(~np.isfinite(kept_values)).tolist():
        v = kept_values[i]
        if not nonfinite_as_text or (np.isnan(v) and kept_kinds[i] != VALUE_KIND_NAN):
            out_values[i] = None  # a null stays null; GraphQL cannot say NaN/Infinity at all
        else:
            out_values[i] = nonfinite_text(v)
    steps = series.steps[keep]
    return {
        "name": name,
        "count": None,  # filled below (keeps the key order of answers)
        "steps": [None if s != s else int(s) for s in steps.tolist()],
        "values": out_values,
        **({"count": series.count, "min": series.min, "max": series.max} if isinstance(series, Envelope) else
           {"count": int(len(values)), "min": finite_extreme(values, np.fmin),
            "max": finite_extreme(values, np.fmax)}),
    }


def finite_extreme(values: np.ndarray, pick: np.ufunc) -> float | None:
    """The smallest (``np.fmin``) or largest (``np.fmax``) finite value; None when there is none."""
    if len(values) == 0:
        return None
    found = pick.reduce(values)  # fmin/fmax skip NaN at full speed
    if np.isinf(found):  # an infinity was logged: only then pay for a finite-only copy
        finite = values[np.isfinite(values)]
        found = pick.reduce(finite) if len(finite) else np.nan
    return None if np.isnan(found) else float(found)


def joined(parts: list[Series | Envelope | None], max_points: int | None) -> Series | Envelope | None:
    """Pieces of one history (a fork's parent history, then its own) as one answer: a ``Series`` in step order, or an
    ``Envelope`` (downsampled to ``max_points`` buckets again) when a piece already is one. None when all are."""
    found = [part for part in parts if part is not None and len(part.steps)]
    if not found:
        return next((part for part in parts if part is not None), None)
    if len(found) == 1:
        return found[0]
    if max_points is not None:
        # Downsampled piece by piece, buckets shared out by length: no copy of the whole history is made.
        total = sum(len(p.steps) for p in found)
        found = [p if isinstance(p, Envelope) else _envelope_of(p, max(1, round(max_points * len(p.steps) / total)))
                 for p in found]
    steps, values, kinds = (np.concatenate([getattr(p, c) for p in found]) for c in ("steps", "values", "kinds"))
    # A fork's pieces usually follow one another (the parent's stop below the child's first step): no sort then.
    if not all(a.steps[-1] <= b.steps[0] for a, b in zip(found, found[1:])):
        order = np.argsort(np.where(np.isnan(steps), -np.inf, steps), kind="stable")
        steps, values, kinds = steps[order], values[order], kinds[order]
    if not any(isinstance(part, Envelope) for part in found):
        return Series(steps, values, kinds)
    count = sum(p.count if isinstance(p, Envelope) else len(p.steps) for p in found)
    lows = [p.min if isinstance(p, Envelope) else finite_extreme(p.values, np.fmin) for p in found]
    highs = [p.max if isinstance(p, Envelope) else finite_extreme(p.values, np.fmax) for p in found]
    if max_points is not None and len(values) > 2 * max_points:
        keep = minmax_indices(values, max_points)
        steps, values, kinds = steps[keep], values[keep], kinds[keep]
    return Envelope(steps, values, kinds, count, min((v for v in lows if v is not None), default=None),
                    max((v for v in highs if v is not None), default=None))


def _envelope_of(series: Series, max_points: int) -> Envelope:
    keep = minmax_indices(series.values, max_points)
    return Envelope(series.steps[keep], series.values[keep], series.kinds[keep], len(series.values),
                    finite_extreme(series.values, np.fmin), finite_extreme(series.values, np.fmax))
