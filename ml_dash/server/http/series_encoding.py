"""``seriesBatch(encoding: "base64")``: point arrays as typed arrays in base64 instead of JSON number lists.

An overlay of 1,000 runs carries ~800,000 numbers: as JSON lists the server turns each into a Python object and
then text, and the browser parses each back (``benchmarks/dashboard_workspace.py``). Base64 of the array's bytes
costs the server a ``tobytes`` and the browser one ``atob`` per array (``static/js/lib/typed_arrays.js``).

Each array is a string ``"<type>:<base64>"``, little-endian: ``f8`` Float64, ``f4`` Float32, ``i4`` Int32; NaN
stands for JSON's null (a step never logged, a value GraphQL cannot carry: NaN and ±Infinity are null in the JSON
encoding too). Values go as Float32 (what the JSON encoding's 7 significant digits keep) unless a finite one is
outside Float32's range; steps as Int32 when they all are integers in its range, else Float64; times as Float64.
"""
from __future__ import annotations

import base64

import numpy as np

from ml_dash.server.series.downsample import Envelope, finite_extreme, minmax_indices
from ml_dash.server.series.types import Series

ENCODINGS = ("json", "base64")
_F4_MAX = float(np.finfo(np.float32).max)
_I4 = np.iinfo(np.int32)


def encode(array: np.ndarray, dtype: str) -> str:
    return f"{dtype}:{base64.b64encode(np.ascontiguousarray(array, dtype='<' + dtype).tobytes()).decode('ascii')}"


def encode_values(values: np.ndarray) -> str:
    values = np.where(np.isfinite(values), values, np.nan)  # GraphQL's null for NaN/Infinity, as the JSON lists
    finite = values[~np.isnan(values)]
    wide = len(finite) and float(np.abs(finite).max()) > _F4_MAX
    return encode(values, "f8" if wide else "f4")


def encode_steps(steps: np.ndarray) -> str:
    if (len(steps) and not np.isnan(steps).any() and (steps == np.round(steps)).all()
            and steps.min() >= _I4.min and steps.max() <= _I4.max):
        return encode(steps, "i4")
    return encode(steps, "f8")


def compact_result(name: str, series: Series | Envelope, max_points: int) -> tuple[dict, np.ndarray]:
    """``series_result``'s answer with encoded arrays, and where each kept point sits on the step-time anchors'
    axis (its step; for a series logged without steps, its position in log order: ``graphql_series._places``)."""
    values = series.values
    if isinstance(series, Envelope):
        keep = np.arange(len(values))
        count, low, high = series.count, series.min, series.max
    else:
        keep = minmax_indices(values, max_points)
        count, low, high = int(len(values)), finite_extreme(values, np.fmin), finite_extreme(values, np.fmax)
    steps = np.asarray(series.steps[keep], dtype=np.float64)
    places = steps
    if len(steps) and np.isnan(steps).all():  # stepless: the anchors map positions in log order to times
        if isinstance(series, Envelope):  # the kept positions are not known: spread them evenly
            places = np.round(np.linspace(0, count - 1, len(steps))) if len(steps) > 1 else np.zeros(len(steps))
        else:
            places = keep.astype(np.float64)
    return ({"name": name, "count": count, "steps": encode_steps(steps), "values": encode_values(values[keep]),
             "min": low, "max": high}, places)
