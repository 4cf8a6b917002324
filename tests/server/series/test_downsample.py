"""Min/max-per-bucket downsampling."""
from __future__ import annotations

import numpy as np

from ml_dash.server.series.downsample import minmax_indices, series_result
from ml_dash.server.series.types import VALUE_KIND_NAN, VALUE_KIND_NULL, VALUE_KIND_NUMBER, Series


def test_short_series_is_returned_whole():
    """Fewer points than buckets: every index comes back."""
    assert minmax_indices(np.arange(5.0), 10).tolist() == [0, 1, 2, 3, 4]


def test_every_bucket_keeps_its_min_and_max():
    """Each bucket contributes its extreme points, so single-point spikes and dips survive."""
    values = np.zeros(1_000_000)
    values[123_457], values[876_543] = 1e9, -1e9
    kept = minmax_indices(values, 1000)
    assert len(kept) <= 2000 and 123_457 in kept and 876_543 in kept
    assert np.all(np.diff(kept) > 0)


def test_nan_never_wins_and_all_nan_buckets_keep_first_point():
    """NaN is ignored for min/max; a bucket without numbers keeps its first point."""
    values = np.array([np.nan, 5.0, 1.0, np.nan, np.nan, np.nan, 2.0, 3.0])
    assert minmax_indices(values, 4).tolist() == [1, 2, 4, 6, 7]


def test_series_result_shapes_values():
    """REST spells NaN/±inf as text and keeps null as null; min/max ignore non-finite values."""
    values = np.array([1.0, np.nan, np.inf, np.nan])
    kinds = np.array([VALUE_KIND_NUMBER, VALUE_KIND_NAN, VALUE_KIND_NUMBER, VALUE_KIND_NULL], dtype=np.int8)
    series = Series(np.array([0.0, 1.0, np.nan, 3.0]), values, kinds)
    rest = series_result("x", series, None, nonfinite_as_text=True)
    assert rest["values"] == [1.0, "NaN", "Infinity", None] and rest["steps"] == [0, 1, None, 3]
    assert (rest["min"], rest["max"], rest["count"]) == (1.0, 1.0, 4)
    assert series_result("x", series, None, nonfinite_as_text=False)["values"] == [1.0, None, None, None]
