"""How a chunk column's array becomes its stored BLOB: the format tag of each chunk row (``metric_chunks.codec``).

``RAW`` (0): the array's little-endian bytes, as every chunk was stored before compression (and still reads).
``ZSTD`` (1): a transform of the float64 bit patterns, a byte shuffle, then each byte plane zstd-compressed alone:

    u8 transform | u32 n | u32 plane header × itemsize | planes

- ``transform`` (8-byte columns; the int64 view of the bit patterns, integer arithmetic wrapping so each is exactly
  invertible): ``NONE``, ``DELTA`` (difference from the previous, zigzag-coded so small negatives stay small),
  ``DOD`` (delta of delta, zigzag), ``XOR`` (with the previous value, as Gorilla does). Steps and timestamps take
  ``DELTA``: steps +1 and wall times a few ms apart differ little from one point to the next. Values take whichever
  of ``NONE``/``XOR``/``DOD`` codes a sample of the chunk smallest: noise compresses best untouched, a float32 loss
  after XOR, a float64 schedule after DOD.
- the byte shuffle puts byte k of every value in plane k: the sign/exponent plane of a series is nearly constant,
  the low mantissa planes are noise. Each plane is compressed on its own, so each gets its own entropy table (one
  zstd frame over all planes codes the nearly constant planes with the noise's table). A plane header is its length
  with a kind in the top two bits: a zstd frame, the plane's bytes (when zstd would not shrink them), or one byte
  repeated ``n`` times.

Why this codec (zstandard, transforms in numpy) and not blosc2 or lz4: docs/server.md, "Metric chunk compression",
with the numbers of ``benchmarks/chunk_codecs.py``.
"""
from __future__ import annotations

import struct
import threading

import numpy as np
import zstandard

RAW, ZSTD = 0, 1
CODECS = {"raw": RAW, "zstd": ZSTD}  # the names ML_DASH_CHUNK_CODEC takes

NONE, DELTA, DOD, XOR = 0, 1, 2, 3
LEVEL = 1  # higher levels shrank the benchmark's series by under 2% for 1.3-3x the encode time
SAMPLE = 512  # points a values column's transform is chosen on

_HEAD = struct.Struct("<BI")
_ZSTD_PLANE, _RAW_PLANE, _CONSTANT_PLANE = 0, 1, 2
_LENGTH = (1 << 30) - 1
_ONE = np.uint64(1)


class _Coders(threading.local):
    """zstandard's (de)compressor objects must not be shared between threads (SQLite reads run on several)."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=LEVEL)
        self.decompressor = zstandard.ZstdDecompressor()


_CODERS = _Coders()


def _zigzag(x: np.ndarray) -> np.ndarray:
    return ((x << 1) ^ (x >> 63)).view(np.uint64)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    return (z >> _ONE).view(np.int64) ^ -(z & _ONE).view(np.int64)


def _forward(bits: np.ndarray, transform: int) -> np.ndarray:
    if transform == NONE:
        return bits
    if transform == XOR:
        out = bits.copy()
        out[1:] ^= bits[:-1]
        return out
    out = np.diff(bits, prepend=np.int64(0))
    if transform == DOD:
        out = np.diff(out, prepend=np.int64(0))
    return _zigzag(out).view(np.int64)


def _inverse(coded: np.ndarray, transform: int) -> np.ndarray:
    if transform == NONE:
        return coded
    if transform == XOR:
        return np.bitwise_xor.accumulate(coded)
    out = np.cumsum(_unzigzag(coded.view(np.uint64)))
    return np.cumsum(out) if transform == DOD else out


def _planes(array: np.ndarray) -> np.ndarray:
    """The byte shuffle: plane k (a row) holds byte k of every item."""
    return np.ascontiguousarray(array.view(np.uint8).reshape(len(array), array.itemsize).T)


def _best_values_transform(bits: np.ndarray) -> int:
    """The transform whose byte planes of a sample have the least order-0 entropy (what per-plane zstd mostly
    codes at: noisy planes go to its entropy coder; a trial compression of the sample per transform cost 3x more)."""
    if len(bits) < 16:
        return XOR
    sample = bits[:SAMPLE]
    offsets = (np.arange(8, dtype=np.intp) * 256)[:, None]
    best, best_bits = XOR, np.inf
    for transform in (XOR, NONE, DOD):
        counts = np.bincount((_planes(_forward(sample, transform)) + offsets).ravel(), minlength=2048)
        counts = counts[counts > 0].astype(np.float64)
        # sum over planes of n*H(plane) = n*log2(n)*planes - sum(c*log2(c)), the same n for every transform
        cost = -float((counts * np.log2(counts)).sum())
        if cost < best_bits - 1e-9:
            best, best_bits = transform, cost
    return best


def encode_column(array: np.ndarray, column: str) -> bytes:
    """The ``ZSTD`` BLOB of one chunk column (``array`` of the column's dtype, see ``chunks.DTYPES``)."""
    n = len(array)
    if array.dtype.itemsize == 8:
        bits = np.ascontiguousarray(array).view(np.int64)
        transform = _best_values_transform(bits) if column == "values" else DELTA
        planes = _planes(_forward(bits, transform))
    else:
        transform = NONE
        planes = np.ascontiguousarray(array).view(np.uint8).reshape(1, n)
    constant = (planes == planes[:, :1]).all(axis=1) if n else np.ones(len(planes), bool)
    headers, payloads = [], []
    compress = _CODERS.compressor.compress
    for plane, same in zip(planes, constant):
        if same:
            payload, kind = plane[:1].tobytes() if n else b"\0", _CONSTANT_PLANE
        else:
            raw = plane.tobytes()
            payload, kind = compress(raw), _ZSTD_PLANE
            if len(payload) >= len(raw):
                payload, kind = raw, _RAW_PLANE
        headers.append(kind << 30 | len(payload))
        payloads.append(payload)
    return _HEAD.pack(transform, n) + struct.pack(f"<{len(headers)}I", *headers) + b"".join(payloads)


def decode_column(blob: bytes, dtype: np.dtype, codec: int) -> np.ndarray:
    """A stored column BLOB back to its array (read-only for ``RAW``: a view of the BLOB)."""
    if codec == RAW:
        return np.frombuffer(blob, dtype)
    if codec != ZSTD:
        raise ValueError(f"unknown metric chunk codec {codec!r} (written by a newer ml-dash?)")
    transform, n = _HEAD.unpack_from(blob)
    size = dtype.itemsize
    headers = struct.unpack_from(f"<{size}I", blob, _HEAD.size)
    planes = np.empty((size, n), np.uint8)
    offset = _HEAD.size + 4 * size
    decompress = _CODERS.decompressor.decompress
    view = memoryview(blob)
    for k, header in enumerate(headers):
        kind, length = header >> 30, header & _LENGTH
        payload = view[offset:offset + length]
        offset += length
        if kind == _CONSTANT_PLANE:
            planes[k] = payload[0]
        elif kind == _RAW_PLANE:
            planes[k] = np.frombuffer(payload, np.uint8)
        else:
            planes[k] = np.frombuffer(decompress(payload), np.uint8)
    if size == 1:
        return planes[0].view(dtype)
    coded = np.ascontiguousarray(planes.T).view(np.int64).reshape(n)
    return _inverse(coded, transform).view(dtype)


def column_length(blob: bytes, dtype: np.dtype, codec: int) -> int:
    """How many items a stored column BLOB holds, without decoding it."""
    return len(blob) // dtype.itemsize if codec == RAW else _HEAD.unpack_from(blob)[1]
