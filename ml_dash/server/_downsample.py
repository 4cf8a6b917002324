"""Min/max-per-bucket downsampling: a chart of N buckets that still shows every spike.

Points are split into at most ``max_points`` buckets of consecutive points (in step order). Each bucket keeps the
point with its smallest and the point with its largest value, in their original order, so up to ``2 * max_points``
points come back. A bucket holding only null/NaN values keeps its first point so gaps stay visible.
"""
from __future__ import annotations

import numpy as np

from ._storage import VALUE_KIND_NAN, Series

_BLOCK = 1 << 18


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
    keep = minmax_indices(values, max_points) if max_points is not None else slice(None)
    kept_values, kept_kinds = values[keep], series.kinds[keep]
    out_values = kept_values.tolist()
    for i in np.flatnonzero(~np.isfinite(kept_values)).tolist():
        v = kept_values[i]
        if not nonfinite_as_text or (np.isnan(v) and kept_kinds[i] != VALUE_KIND_NAN):
            out_values[i] = None  # a null stays null; GraphQL cannot say NaN/Infinity at all
        else:
            out_values[i] = "NaN" if np.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    steps = series.steps[keep]
    return {
        "name": name,
        "count": int(len(values)),
        "steps": [None if s != s else int(s) for s in steps.tolist()],
        "values": out_values,
        "min": _finite_extreme(values, np.fmin),
        "max": _finite_extreme(values, np.fmax),
    }


def _finite_extreme(values: np.ndarray, pick: np.ufunc) -> float | None:
    """The smallest (``np.fmin``) or largest (``np.fmax``) finite value; None when there is none."""
    if len(values) == 0:
        return None
    found = pick.reduce(values)  # fmin/fmax skip NaN at full speed
    if np.isinf(found):  # an infinity was logged: only then pay for a finite-only copy
        finite = values[np.isfinite(values)]
        found = pick.reduce(finite) if len(finite) else np.nan
    return None if np.isnan(found) else float(found)
