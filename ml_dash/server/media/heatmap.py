"""Histograms over steps as one matrix: the dashboard's distribution heatmap (CPU work: run it in a thread).

Every histogram is re-binned onto a shared value grid (its cumulative counts interpolated at the grid's edges, so
mass is kept, never sampled) and normalised to sum 1. With more histograms than ``columns``, each column is the mean
of the histograms whose steps fall in its step interval: every step counts in some column, none is skipped, and a
narrower step range (zooming in) gives each step more room until each has a column of its own.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def heatmap(rows: list[tuple[Any, bytes, bytes]], columns: int, bins: int) -> dict[str, Any]:
    """``{"lo", "hi", "bins", "columns": [{"step_min", "step_max", "count"}], "values": [[...] per column]}``."""
    if not rows:
        return {"lo": None, "hi": None, "bins": bins, "columns": [], "values": []}
    steps = np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=np.float64)
    edges = [np.frombuffer(r[1], "<f8") for r in rows]
    counts = [np.frombuffer(r[2], "<f8") for r in rows]
    lo = min(float(e[0]) for e in edges)
    hi = max(float(e[-1]) for e in edges)
    grid = np.linspace(lo, hi, bins + 1)
    dense = np.empty((len(rows), bins))
    for i, (e, c) in enumerate(zip(edges, counts)):
        cumulative = np.concatenate(([0.0], np.cumsum(c)))
        dense[i] = np.diff(np.interp(grid, e, cumulative))
        total = cumulative[-1]
        if total > 0:
            dense[i] /= total
    order = np.argsort(steps, kind="stable")
    steps, dense = steps[order], dense[order]
    if len(rows) <= columns:
        ids = np.arange(len(rows))
    else:
        finite = np.nan_to_num(steps, nan=np.nanmin(steps) if np.isfinite(steps).any() else 0.0)
        first, last = float(finite[0]), float(finite[-1])
        ids = np.minimum(((finite - first) / max(last - first, 1e-300) * columns).astype(np.int64), columns - 1) \
            if last > first else np.zeros(len(rows), np.int64)
    n = int(ids.max()) + 1
    sums = np.zeros((n, bins))
    np.add.at(sums, ids, dense)
    count = np.bincount(ids, minlength=n)
    used = count > 0
    means = sums[used] / count[used][:, None]
    step_min = np.full(n, np.inf)
    step_max = np.full(n, -np.inf)
    np.minimum.at(step_min, ids, steps)
    np.maximum.at(step_max, ids, steps)
    described = [{"step_min": _step(a), "step_max": _step(b), "count": int(k)}
                 for a, b, k in zip(step_min[used], step_max[used], count[used])]
    return {"lo": lo, "hi": hi, "bins": bins, "columns": described, "values": np.round(means, 6).tolist()}


def _step(value: float) -> int | None:
    return None if not np.isfinite(value) else int(value)
