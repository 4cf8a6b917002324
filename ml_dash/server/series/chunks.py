"""Columnar metric chunks: the on-disk layout of metric points, shared by every storage backend.

A chunk holds the points of one metric name from one batch as four numpy arrays, stored as BLOBs (SQLite) or BYTEA
(PostgreSQL) beside plain ``n``, ``step_min`` and ``step_max`` columns for the range index, and ``codec``, the format
of the BLOBs (``series.codec``: ``RAW`` little-endian arrays, as every chunk was stored before compression, or
``ZSTD``, transformed, byte-shuffled and compressed; new chunks take ``ML_DASH_CHUNK_CODEC``, default ``zstd``):

=============  ========  =====================================================
column         dtype     meaning
=============  ========  =====================================================
``steps``      ``<f8``   step, NaN for a point logged without a step
``values``     ``<f8``   value, NaN for null and NaN (``kinds`` tells which)
``kinds``      ``i1``    ``VALUE_KIND_*`` of ``_storage``
``timestamps`` ``<f8``   wall time, NaN when the event had none
=============  ========  =====================================================

Beside them, ``summary`` holds per block of ``BLOCK`` points (in step order within the chunk) the points with the
smallest and largest value, the block's first point and its finite extremes (``SUMMARY_DTYPE``): a chart of a whole
series is drawn from these (``_summaries``) without decoding the points themselves.

Reading a series decodes the chunks' BLOBs into arrays (``np.frombuffer`` for ``RAW``): no Python object per point,
which is what made the one-row-per-point layout slow. The API is four functions: ``encode_chunk`` (points → row
fields), ``decode_chunks`` (rows → arrays), ``merge_encoded`` (append points to a stored chunk, to compact small live batches) and
``to_series`` (arrays → a ``Series`` in step order, optionally cut to a step range).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ml_dash.server.config import CHUNK_CODEC
from ml_dash.server.series.codec import CODECS, RAW, column_length, decode_column, encode_column
from ml_dash.server.series.types import (
    VALUE_KIND_BOOL,
    VALUE_KIND_NAN,
    VALUE_KIND_NULL,
    VALUE_KIND_NUMBER,
    Series,
)

COLUMNS = ("steps", "values", "kinds", "timestamps")
DTYPES = {"steps": np.dtype("<f8"), "values": np.dtype("<f8"), "kinds": np.dtype("i1"), "timestamps": np.dtype("<f8")}
# The format new chunks are written in, read once per process (the ingest pool's processes read it too); a test or
# a benchmark comparing with the old layout sets ML_DASH_CHUNK_CODEC=raw or patches this.
WRITE_CODEC = CODECS[CHUNK_CODEC.get()]


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
    summary: bytes = b""  # block summaries (``summarize``), empty only for chunks built without them
    codec: int = RAW  # the format of steps/values/kinds/timestamps (``series.codec``), stored as metric_chunks.codec


# Block summaries: one record per BLOCK points of a chunk in step order (the last block may be shorter). ``lo``/``hi``:
# the point with the smallest/largest non-NaN value (infinities count, as in ``_downsample``; ties: the first), its
# position in the chunk (step order) and step; -1 and NaN when the block holds only null/NaN. ``first``: the block's
# first point (a block of only null/NaN is drawn as that point, kind included). ``fin_lo``/``fin_hi``: the smallest and
# largest finite value (NaN when none), for an answer's ``min``/``max``.
BLOCK = 512
SUMMARY_DTYPE = np.dtype([
    ("lo_pos", "<i4"), ("hi_pos", "<i4"), ("lo_step", "<f8"), ("lo_value", "<f8"), ("hi_step", "<f8"),
    ("hi_value", "<f8"), ("first_step", "<f8"), ("first_value", "<f8"), ("first_kind", "i1"), ("fin_lo", "<f8"),
    ("fin_hi", "<f8"),
])


def summarize(steps: np.ndarray, values: np.ndarray, kinds: np.ndarray, ordered: bool = False) -> np.ndarray:
    """The block summaries (``SUMMARY_DTYPE``) of a chunk's points given in stored order; positions count in step
    order (``to_series``'s order), which is stored order when ``ordered``."""
    order = None if ordered else step_order(steps)
    if order is not None:
        steps, values, kinds = steps[order], values[order], kinds[order]
    n = len(values)
    blocks = -(-n // BLOCK)
    out = np.zeros(blocks, SUMMARY_DTYPE)
    if not blocks:
        return out
    # Pad to whole blocks with NaN: a 2-D view then gives every block's extremes in one vectorised pass.
    padded = np.full(blocks * BLOCK, np.nan)
    padded[:n] = values
    rows = padded.reshape(blocks, BLOCK)
    starts = np.arange(blocks, dtype=np.int64) * BLOCK
    lo, hi = np.fmin.reduce(rows, axis=1), np.fmax.reduce(rows, axis=1)
    empty = np.isnan(lo)
    lo_pos = np.where(empty, -1, starts + (rows == lo[:, None]).argmax(axis=1))
    hi_pos = np.where(empty, -1, starts + (rows == hi[:, None]).argmax(axis=1))
    out["lo_pos"], out["hi_pos"] = lo_pos, hi_pos
    out["lo_value"], out["hi_value"] = lo, hi
    out["lo_step"] = np.where(empty, np.nan, steps[np.maximum(lo_pos, 0)])
    out["hi_step"] = np.where(empty, np.nan, steps[np.maximum(hi_pos, 0)])
    out["first_step"], out["first_value"], out["first_kind"] = steps[starts], values[starts], kinds[starts]
    finite_lo, finite_hi = lo, hi
    if np.isinf(lo).any() or np.isinf(hi).any():  # an infinity was logged: only then pay for a finite-only pass
        finite = np.where(np.isfinite(rows), rows, np.nan)
        finite_lo, finite_hi = np.fmin.reduce(finite, axis=1), np.fmax.reduce(finite, axis=1)
    out["fin_lo"], out["fin_hi"] = finite_lo, finite_hi
    return out


def decode_summary(blob: bytes | None, n: int) -> np.ndarray | None:
    """A chunk's stored summary, or None when it is missing or does not fit a chunk of ``n`` points."""
    if blob is None or len(blob) != -(-n // BLOCK) * SUMMARY_DTYPE.itemsize:
        return None
    return np.frombuffer(blob, SUMMARY_DTYPE)


def encode_chunk(points: Sequence[tuple[Any, Any, Any]], codec: int | None = None) -> EncodedChunk:
    """``(step, timestamp, value)`` triples (validated by ``_ingest``: step int|None, value float|int|bool|None), in
    ``codec`` (None: ``WRITE_CODEC``)."""
    n = len(points)
    steps = np.fromiter((np.nan if s is None else s for s, _, _ in points), DTYPES["steps"], n)
    stamps = np.fromiter((np.nan if t is None else t for _, t, _ in points), DTYPES["timestamps"], n)
    kinds = np.fromiter((_kind(v) for _, _, v in points), DTYPES["kinds"], n)
    # None cannot enter a float array; its kind already says null, so any placeholder would do — NaN reads right.
    values = np.fromiter((np.nan if v is None else v for _, _, v in points), DTYPES["values"], n)
    return encode_arrays(steps, values, kinds, stamps, codec)


def _kind(value: Any) -> int:
    if value is None:
        return VALUE_KIND_NULL
    if value is True or value is False:
        return VALUE_KIND_BOOL
    return VALUE_KIND_NAN if value != value else VALUE_KIND_NUMBER


def encode_arrays(steps: np.ndarray, values: np.ndarray, kinds: np.ndarray, stamps: np.ndarray,
                  codec: int | None = None) -> EncodedChunk:
    codec = WRITE_CODEC if codec is None else codec
    stepped = steps[~np.isnan(steps)]
    ordered = len(stepped) == len(steps) and bool(np.all(steps[1:] >= steps[:-1]))
    arrays = {"steps": steps, "values": values, "kinds": kinds, "timestamps": stamps}
    blobs = {c: a.tobytes() if codec == RAW else encode_column(a, c) for c, a in arrays.items()}
    return EncodedChunk(
        n=len(steps),
        step_min=float(stepped.min()) if len(stepped) else None,
        step_max=float(stepped.max()) if len(stepped) else None,
        **blobs, ordered=ordered, summary=summarize(steps, values, kinds, ordered).tobytes(), codec=codec,
    )


def merge_encoded(old: dict[str, Any], new: EncodedChunk) -> EncodedChunk:
    """A stored chunk (``COLUMNS`` → BLOB, and ``codec``, absent for ``RAW``) followed by ``new``'s points, as one
    chunk in ``new``'s codec."""
    old_codec = old.get("codec", RAW)
    arrays = [np.concatenate([decode_column(old[c], DTYPES[c], old_codec),
                              decode_column(getattr(new, c), DTYPES[c], new.codec)]) for c in COLUMNS]
    return encode_arrays(*arrays, codec=new.codec)


def decode_chunks(rows: Iterable[Sequence[Any]], columns: Sequence[str] = COLUMNS[:3]) -> list[np.ndarray]:
    """Rows of BLOBs (one per name in ``columns``, in that order) and the row's codec last → one array per column,
    chunks concatenated. The arrays are read-only.

    ``RAW`` BLOBs are joined first and viewed once (a single copy however many chunks there are); other codecs are
    decoded chunk by chunk into one preallocated array per column.
    """
    rows = list(rows)
    if all(row[-1] == RAW for row in rows):
        return [np.frombuffer(b"".join(row[i] for row in rows), DTYPES[c]) for i, c in enumerate(columns)]
    out = []
    for i, c in enumerate(columns):
        dtype = DTYPES[c]
        array = np.empty(sum(column_length(row[i], dtype, row[-1]) for row in rows), dtype)
        at = 0
        for row in rows:
            part = decode_column(row[i], dtype, row[-1])
            array[at:at + len(part)] = part
            at += len(part)
        array.flags.writeable = False
        out.append(array)
    return out


def chunk_length(steps: bytes, codec: int) -> int:
    """The points of a chunk, from its stored steps BLOB and codec (without decoding it)."""
    return column_length(steps, DTYPES["steps"], codec)


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
    """About ``max_points`` (step, timestamp) pairs of a series from its (steps, timestamps, codec) chunk rows in stored
    order: every stride-th point in step order, plus the last one so the mapping covers the whole series."""
    steps, stamps = decode_chunks(rows, ("steps", "timestamps"))
    if len(steps) and np.isnan(steps).all():
        # Logged without steps (W&B's habit): a point's place is its log order, which is also its position in the
        # series (stored order, as to_series keeps it), so the anchors map that position to its time.
        steps = np.arange(len(steps), dtype=np.float64)
        ordered = True
    known = ~(np.isnan(steps) | np.isnan(stamps))
    steps, stamps = steps[known], stamps[known]
    order = None if ordered else step_order(steps)
    if order is not None:
        steps, stamps = steps[order], stamps[order]
    stride = max(1, -(-len(steps) // max(1, max_points)))
    pick = np.unique(np.append(np.arange(0, len(steps), stride), len(steps) - 1)) if len(steps) else []
    return steps[pick], stamps[pick]


def summary_extremes(summaries: Sequence[bytes], values: Sequence[tuple[bytes, int]] = ()) -> dict[str, float | None]:
    """``{min, max}``: the smallest and largest finite value of a series from its chunks' block summaries (plus the
    (``values`` BLOB, codec) of chunks stored without summaries); None when no value is finite."""
    lows, highs = [], []
    for blob in summaries:
        records = np.frombuffer(blob, SUMMARY_DTYPE)
        lows.append(np.fmin.reduce(records["fin_lo"]) if len(records) else np.nan)
        highs.append(np.fmax.reduce(records["fin_hi"]) if len(records) else np.nan)
    for blob, codec in values:
        array = decode_column(blob, DTYPES["values"], codec)
        finite = array[np.isfinite(array)]
        lows.append(finite.min() if len(finite) else np.nan)
        highs.append(finite.max() if len(finite) else np.nan)
    low = np.fmin.reduce(np.asarray(lows, np.float64)) if lows else np.nan
    high = np.fmax.reduce(np.asarray(highs, np.float64)) if highs else np.nan
    return {"min": None if low != low else float(low), "max": None if high != high else float(high)}
