"""Metric series side by side (one step axis for every metric), min/max downsampling, and the optional pandas."""
from __future__ import annotations

from typing import Any

import numpy as np

Series = tuple[np.ndarray, np.ndarray]  # (steps, values) as float64: NaN for a point without a step / no number


def pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("this needs pandas: pip install pandas (or use .to_numpy(), which does not)") \
            from None
    return pandas


def in_step_order(steps: np.ndarray, values: np.ndarray) -> Series:
    """Stable sort by step (points without a step last), as the server stores and answers a series."""
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]


def minmax(steps: np.ndarray, values: np.ndarray, max_points: int) -> Series:
    """At most ``max_points`` buckets of consecutive points, each keeping its smallest and its largest value."""
    n = len(values)
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if n <= max_points:
        return steps, values
    edges = np.linspace(0, n, max_points + 1).astype(np.int64)
    keep = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        bucket = values[lo:hi]
        if np.isnan(bucket).all():
            keep.append(lo)
            continue
        keep.extend((lo + int(np.nanargmin(bucket)), lo + int(np.nanargmax(bucket))))
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    return steps[keep], values[keep]


def align(series: dict[str, Series]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One ascending step axis and each metric's values on it (NaN where it has no point). A step logged twice in a
    metric appears twice (its n-th point beside the other metrics' n-th point at that step): nothing is averaged."""
    parts = {name: in_step_order(*s) for name, s in series.items()}
    if all(_unique(steps) for steps, _ in parts.values()):
        axis = np.unique(np.concatenate([s for s, _ in parts.values()])) if parts else np.empty(0)
        columns = {}
        for name, (steps, values) in parts.items():
            column = np.full(len(axis), np.nan)
            column[np.searchsorted(axis, steps)] = values
            columns[name] = column
        return _step_dtype(axis), columns
    # Keys are (has no step, step, n-th occurrence): a point without a step gets step 0.0 in its key, because NaN
    # equals nothing (each NaN key would be a row of its own, in hash order); its place is its log order (n), so
    # the n-th step-less point of each metric shares a row, as W&B's log({...}) calls without a step line up.
    keyed = {name: list(zip(_occurrences(steps), values.tolist())) for name, (steps, values) in parts.items()}
    keys = sorted({k for pairs in keyed.values() for k, _ in pairs})
    position = {k: i for i, k in enumerate(keys)}
    columns = {}
    for name, pairs in keyed.items():
        column = np.full(len(keys), np.nan)
        for key, value in pairs:
            column[position[key]] = value
        columns[name] = column
    return _step_dtype(np.array([np.nan if k[0] else k[1] for k in keys], dtype=np.float64)), columns


def _unique(steps: np.ndarray) -> bool:
    return not np.isnan(steps).any() and (len(steps) < 2 or bool((steps[1:] != steps[:-1]).all()))


def _occurrences(steps: np.ndarray) -> list[tuple[bool, float, int]]:
    """Per point its row key: (no step, step or 0.0, how many points of this metric had that key before it)."""
    seen: dict[Any, int] = {}
    out = []
    for step in steps.tolist():
        key = (True, 0.0) if step != step else (False, step)
        n = seen.get(key, 0)
        seen[key] = n + 1
        out.append((*key, n))
    return out


def _step_dtype(axis: np.ndarray) -> np.ndarray:
    """Integer steps as int64 (the usual case), else float64 with NaN for points logged without a step."""
    if len(axis) and np.isfinite(axis).all() and (axis == np.round(axis)).all():
        return axis.astype(np.int64)
    return axis.astype(np.float64) if len(axis) else np.empty(0, dtype=np.int64)


def flatten(params: dict, prefix: str = "params.") -> dict[str, Any]:
    """Nested parameters as ``params.model.layers``-style columns."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
