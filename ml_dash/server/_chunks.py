"""Columnar metric chunks: the on-disk layout of metric points, shared by every storage backend.

A chunk holds the points of one metric name from one batch as four little-endian numpy arrays, stored as BLOBs
(SQLite) or BYTEA (PostgreSQL) beside plain ``n``, ``step_min`` and ``step_max`` columns for the range index:

=============  ========  =====================================================
column         dtype     meaning
=============  ========  =====================================================
``steps``      ``<f8``   step, NaN for a point logged without a step
``values``     ``<f8``   value, NaN for null and NaN (``kinds`` tells which)
``kinds``      ``i1``    ``VALUE_KIND_*`` of ``_storage``
``timestamps`` ``<f8``   wall time, NaN when the event had none
=============  ========  =====================================================

Reading a series is ``np.frombuffer`` over the chunks' BLOBs: no Python object per point, which is what made the
one-row-per-point layout slow. The API is four functions: ``encode_chunk`` (points → row fields), ``decode_chunks``
(rows → arrays), ``merge_encoded`` (append points to a stored chunk, to compact small live batches) and
``to_series`` (arrays → a ``Series`` in step order, optionally cut to a step range).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ._storage import VALUE_KIND_BOOL, VALUE_KIND_NAN, VALUE_KIND_NULL, VALUE_KIND_NUMBER, Series

COLUMNS = ("steps", "values", "kinds", "timestamps")
DTYPES = {"steps": np.dtype("<f8"), "values": np.dtype("<f8"), "kinds": np.dtype("i1"), "timestamps": np.dtype("<f8")}


@dataclass(frozen=True)
class EncodedChunk:
    """The fields of one chunk row. ``step_min``/``step_max`` ignore missing steps; None when the chunk has none."""

    n: int
    step_min: float | None
    step_max: float | None
    steps: bytes
    values: bytes
    kinds: bytes
    timestamps: bytes
    ordered: bool  # steps present and non-decreasing, so the chunk needs no sort when read alone


def encode_chunk(points: Sequence[tuple[Any, Any, Any]]) -> EncodedChunk:
    """``(step, timestamp, value)`` triples (validated by ``_ingest``: step int|None, value float|int|bool|None)."""
    n = len(points)
    steps = np.fromiter((np.nan if s is None else s for s, _, _ in points), DTYPES["steps"], n)
    stamps = np.fromiter((np.nan if t is None else t for _, t, _ in points), DTYPES["timestamps"], n)
    kinds = np.fromiter((_kind(v) for _, _, v in points), DTYPES["kinds"], n)
    # None cannot enter a float array; its kind already says null, so any placeholder would do — NaN reads right.
    values = np.fromiter((np.nan if v is None else v for _, _, v in points), DTYPES["values"], n)
    return _encode_arrays(steps, values, kinds, stamps)


def _kind(value: Any) -> int:
    if value is None:
        return VALUE_KIND_NULL
    if value is True or value is False:
        return VALUE_KIND_BOOL
    return VALUE_KIND_NAN if value != value else VALUE_KIND_NUMBER


def _encode_arrays(steps: np.ndarray, values: np.ndarray, kinds: np.ndarray, stamps: np.ndarray) -> EncodedChunk:
    stepped = steps[~np.isnan(steps)]
    return EncodedChunk(
        n=len(steps),
        step_min=float(stepped.min()) if len(stepped) else None,
        step_max=float(stepped.max()) if len(stepped) else None,
        steps=steps.tobytes(), values=values.tobytes(), kinds=kinds.tobytes(), timestamps=stamps.tobytes(),
        ordered=len(stepped) == len(steps) and bool(np.all(steps[1:] >= steps[:-1])),
    )


def merge_encoded(old: dict[str, bytes], new: EncodedChunk) -> EncodedChunk:
    """A stored chunk (``COLUMNS`` → bytes) followed by ``new``'s points, as one chunk."""
    arrays = [np.frombuffer(old[c] + getattr(new, c), DTYPES[c]) for c in COLUMNS]
    return _encode_arrays(*arrays)


def decode_chunks(rows: Iterable[Sequence[bytes]], columns: Sequence[str] = COLUMNS[:3]) -> list[np.ndarray]:
    """Rows of BLOBs (one per name in ``columns``, in that order) → one array per column, chunks concatenated.

    Joining the bytes first makes a single copy however many chunks there are. The arrays are read-only.
    """
    parts: list[list[bytes]] = [[] for _ in columns]
    for row in rows:
        for part, blob in zip(parts, row):
            part.append(blob)
    return [np.frombuffer(b"".join(part), DTYPES[c]) for part, c in zip(parts, columns)]


def step_order(steps: np.ndarray) -> np.ndarray | None:
    """The permutation that puts points in step order, or None when they already are.

    Points without a step come first (as SQL sorts NULL), and equal steps keep their stored order (stable sort).
    """
    if len(steps) < 2 or np.all(steps[1:] >= steps[:-1]):
        return None  # NaN compares false, so any missing step (except in a series of one point) lands here
    return np.argsort(np.where(np.isnan(steps), -np.inf, steps), kind="stable")


def to_series(steps: np.ndarray, values: np.ndarray, kinds: np.ndarray, step_min: float | None = None,
              step_max: float | None = None, ordered: bool = False) -> Series:
    """Arrays in stored order → a ``Series`` in step order. ``ordered``: the caller knows no sort is needed.

    With a step range, points without a step are left out (they have no place on a step axis).
    """
    order = None if ordered else step_order(steps)
    if order is not None:
        steps, values, kinds = steps[order], values[order], kinds[order]
    if step_min is None and step_max is None:
        return Series(steps, values, kinds)
    # Step order puts the points without a step first; past them the steps are sorted and searchable.
    first = int(np.count_nonzero(np.isnan(steps))) if len(steps) and np.isnan(steps[0]) else 0
    stepped = steps[first:]
    lo = first + (0 if step_min is None else int(np.searchsorted(stepped, step_min, "left")))
    hi = first + (len(stepped) if step_max is None else int(np.searchsorted(stepped, step_max, "right")))
    hi = max(lo, hi)
    return Series(steps[lo:hi], values[lo:hi], kinds[lo:hi])


def step_time_anchors(rows: Iterable[Sequence[bytes]], ordered: bool,
                      max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """About ``max_points`` (step, timestamp) pairs of a series from its (steps, timestamps) chunk columns in stored
    order: every stride-th point in step order, plus the last one so the mapping covers the whole series."""
    steps, stamps = decode_chunks(rows, ("steps", "timestamps"))
    known = ~(np.isnan(steps) | np.isnan(stamps))
    steps, stamps = steps[known], stamps[known]
    order = None if ordered else step_order(steps)
    if order is not None:
        steps, stamps = steps[order], stamps[order]
    stride = max(1, -(-len(steps) // max(1, max_points)))
    pick = np.unique(np.append(np.arange(0, len(steps), stride), len(steps) - 1)) if len(steps) else []
    return steps[pick], stamps[pick]
