"""Min/max-per-bucket downsampling: a chart of N buckets that still shows every spike.

Points are split into at most ``max_points`` buckets of consecutive points (in step order). Each bucket keeps the
point with its smallest and the point with its largest value, in their original order, so up to ``2 * max_points``
points come back. A bucket holding only null/NaN values keeps its first point so gaps stay visible.
"""
from __future__ import annotations

import numpy as np

from ._storage import VALUE_KIND_NAN, Series


def minmax_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices (ascending) of the points to keep from ``values`` (float64, NaN = no number)."""
    n = len(values)
    if max_points <= 0:
        raise ValueError("max_points must be positive")
    if n <= max_points:
        return np.arange(n)
    starts = np.linspace(0, n, max_points + 1).astype(np.int64)[:-1]
    numeric = ~np.isnan(values)
    # NaN must never win a comparison: +inf for the min search, -inf for the max search.
    low = np.where(numeric, values, np.inf)
    high = np.where(numeric, values, -np.inf)
    mins = np.minimum.reduceat(low, starts)
    maxs = np.maximum.reduceat(high, starts)
    bucket = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
    keep_min = _first_hit_per_bucket(numeric & (low == mins[bucket]), starts)
    keep_max = _first_hit_per_bucket(numeric & (high == maxs[bucket]), starts)
    # Buckets without any number have no hit; keep their first point instead.
    empty = ~np.logical_or.reduceat(numeric, starts)
    return np.unique(np.concatenate([keep_min, keep_max, starts[empty]]))


def _first_hit_per_bucket(hit: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For each bucket, the first index where ``hit`` is true (buckets without a hit are skipped)."""
    positions = np.flatnonzero(hit)
    if len(positions) == 0:
        return positions
    first = np.searchsorted(positions, starts)
    ends = np.append(starts[1:], len(hit))
    candidates = positions[np.minimum(first, len(positions) - 1)]
    return candidates[(first < len(positions)) & (candidates < ends)]


def series_result(name: str, series: Series, max_points: int | None, nonfinite_as_text: bool) -> dict:
    """Shape a ``Series`` for an answer: ``{name, count, steps, values, min, max}``.

    ``count`` is the number of stored points in the range; ``min``/``max`` are over its finite values. JSON has no
    NaN/Infinity: REST answers use the JSONL spellings ("NaN", "Infinity", "-Infinity"), GraphQL (whose Float cannot
    carry them) answers null.
    """
    values = series.values
    finite = np.isfinite(values)
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
        "min": float(values[finite].min()) if finite.any() else None,
        "max": float(values[finite].max()) if finite.any() else None,
    }
