"""Compressed metric chunks (``series.codec``): every value kind and bit pattern comes back exactly."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_dash.server.series.chunks import COLUMNS, DTYPES, decode_chunks, encode_chunk, merge_encoded
from ml_dash.server.series.codec import RAW, ZSTD, decode_column, encode_column

INT64 = (-(2**63), 2**63 - 1)
EXTREMES = [math.nan, math.inf, -math.inf, None, True, False, 0, -0.0, INT64[0], INT64[1], sys.float_info.max,
            -sys.float_info.max, sys.float_info.min, 5e-324, -5e-324, 1.0, 2**53 + 1]
HUGE_STEPS = [None, 0, 1, 2**53, 2**62, INT64[1], INT64[0], None]


def _decoded(chunk) -> list[np.ndarray]:
    return decode_chunks([[*(getattr(chunk, c) for c in COLUMNS), chunk.codec]], COLUMNS)


def _same_bits(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def _points(steps, stamps, values) -> list[tuple]:
    return list(zip(steps, stamps, values))


def test_every_value_kind_and_extreme_round_trips_bit_for_bit():
    """NaN, ±Inf, null, bools, int64 and float64 extremes, -0.0, subnormals; missing and huge steps and times: the
    compressed chunk decodes to exactly the arrays the old layout stores."""
    n = len(EXTREMES)
    steps = [HUGE_STEPS[i % len(HUGE_STEPS)] for i in range(n)]
    stamps = [None if i % 3 == 0 else 1.7e9 + i * 0.0031 for i in range(n)]
    points = _points(steps, stamps, EXTREMES)
    raw, packed = encode_chunk(points, RAW), encode_chunk(points, ZSTD)
    assert (raw.codec, packed.codec) == (RAW, ZSTD)
    assert _same_bits(_decoded(packed), _decoded(raw))
    assert (packed.n, packed.step_min, packed.step_max, packed.ordered, packed.summary) == \
        (raw.n, raw.step_min, raw.step_max, raw.ordered, raw.summary)
    steps_back, values, kinds, stamps_back = _decoded(packed)
    assert values[0] != values[0] and values[1] == math.inf and values[8] == float(INT64[0])
    assert steps_back[3] == float(2**53) and np.isnan(steps_back[0]) and np.isnan(stamps_back[0])


@pytest.mark.parametrize("n", [0, 1, 2, 15, 16, 17, 511, 512, 513, 5000])
def test_lengths_around_the_sample_and_block_sizes(n):
    rng = np.random.default_rng(n)
    for column, array in (("steps", np.arange(n, dtype="<f8")), ("values", rng.random(n)),
                          ("timestamps", 1.7e9 + np.cumsum(rng.random(n))), ("kinds", rng.integers(0, 4, n, "i1"))):
        blob = encode_column(array.astype(DTYPES[column]), column)
        assert decode_column(blob, DTYPES[column], ZSTD).tobytes() == array.astype(DTYPES[column]).tobytes()


def test_a_smooth_series_takes_a_few_bytes_per_point_and_noise_under_nine():
    """What compression is for: steps +1, times ~4 ms apart, a float32 loss; and uniform float64 noise."""
    rng = np.random.default_rng(0)
    n = 20_000
    steps = np.arange(n, dtype="<f8")
    stamps = 1.7e9 + np.cumsum(0.004 + rng.normal(0, 30e-6, n))
    loss = (2.0 * np.exp(-steps / 3e5) + 0.1 + rng.normal(0, 1e-4, n)).astype(np.float32).astype("<f8")
    kinds = np.zeros(n, "i1")
    size = sum(len(encode_column(a, c)) for c, a in (("steps", steps), ("values", loss), ("kinds", kinds),
                                                       ("timestamps", stamps)))
    assert size / n < 3.5
    noise = rng.random(n)
    assert len(encode_column(noise, "values")) / n < 7.0
    assert decode_column(encode_column(noise, "values"), DTYPES["values"], ZSTD).tobytes() == noise.tobytes()


def test_merging_a_raw_tail_with_a_compressed_batch_gives_one_compressed_chunk():
    """A server upgraded mid-run: the stored RAW tail absorbs the next (compressed) batch."""
    old = encode_chunk([(s, 1.0 + s, s * 0.5) for s in range(10)], RAW)
    new = encode_chunk([(s, 1.0 + s, None if s == 12 else s * 0.5) for s in range(10, 20)], ZSTD)
    merged = merge_encoded({c: getattr(old, c) for c in COLUMNS} | {"codec": RAW}, new)
    assert merged.codec == ZSTD and merged.n == 20 and merged.ordered
    both = encode_chunk([(s, 1.0 + s, None if s == 12 else s * 0.5) for s in range(20)], RAW)
    assert _same_bits(_decoded(merged), _decoded(both))


def test_decode_chunks_joins_raw_and_compressed_chunks_in_order():
    first = encode_chunk([(s, None, float(s)) for s in range(700)], RAW)
    second = encode_chunk([(s, None, -float(s)) for s in range(700, 900)], ZSTD)
    steps, values, kinds = decode_chunks([(c.steps, c.values, c.kinds, c.codec) for c in (first, second)])
    assert steps.tolist() == list(range(900)) and values[699] == 699.0 and values[700] == -700.0
    assert not values.flags.writeable


def test_an_unknown_codec_is_refused_by_name():
    with pytest.raises(ValueError, match="codec 7"):
        decode_column(b"", DTYPES["values"], 7)


_value = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(INT64[0], INT64[1]))
_step = st.one_of(st.none(), st.integers(INT64[0], INT64[1]), st.integers(0, 10_000))
_stamp = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.floats(1.6e9, 1.8e9))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_step, _stamp, _value), min_size=1, max_size=700))
def test_property_compressed_chunks_decode_to_the_old_layout(points):
    assert _same_bits(_decoded(encode_chunk(points, ZSTD)), _decoded(encode_chunk(points, RAW)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(INT64[0], INT64[1]), max_size=1200), st.sampled_from(["steps", "values", "timestamps"]))
def test_property_any_float64_bit_pattern_survives(bits, column):
    """NaN payloads, signed zeros, subnormals: the transforms work on the bit patterns and wrap, so nothing is lost."""
    array = np.array(bits, np.int64).view("<f8")
    assert decode_column(encode_column(array, column), DTYPES[column], ZSTD).tobytes() == array.tobytes()
