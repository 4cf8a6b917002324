"""Lossless codecs in numpy and zlib, so media needs no optional package: PNG, animated PNG and WAV.

The writer encodes images as PNG (filter 0, one zlib stream), frames without a video encoder as APNG (browsers play
it in an ``<img>``) and audio as WAV (16-bit PCM for int16 samples, 32-bit float for float samples: both exact). The
readers (``ml_dash.Api``, the server's thumbnails) decode what the writer wrote; other files (a JPEG logged from a
path, a WebP) need Pillow, which ``decode_image`` uses when it is installed.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)
_CHANNELS = {v: k for k, v in _COLOR_TYPES.items()}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _ihdr(height: int, width: int, channels: int) -> bytes:
    return _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0))


def _scanlines(pixels: np.ndarray, level: int) -> bytes:
    """The zlib stream of an HxWxC uint8 image: each row behind a filter byte 0 (none)."""
    h, w, c = pixels.shape
    rows = np.zeros((h, w * c + 1), np.uint8)
    rows[:, 1:] = pixels.reshape(h, w * c)
    return zlib.compress(rows.tobytes(), level)


def encode_png(pixels: np.ndarray, level: int = 6) -> bytes:
    """An HxWxC (C in 1-4) uint8 array as PNG bytes."""
    h, w, c = pixels.shape
    return _SIGNATURE + _ihdr(h, w, c) + _chunk(b"IDAT", _scanlines(pixels, level)) + _chunk(b"IEND", b"")


def encode_apng(frames: np.ndarray, fps: float, level: int = 6) -> bytes:
    """A TxHxWxC uint8 array as an animated PNG looping at ``fps`` (lossless)."""
    t, h, w, c = frames.shape
    delay = struct.pack(">HH", max(1, round(1000 / fps)), 1000)
    out = [_SIGNATURE, _ihdr(h, w, c), _chunk(b"acTL", struct.pack(">II", t, 0))]
    seq = 0
    for i in range(t):
        out.append(_chunk(b"fcTL", struct.pack(">IIIII", seq, w, h, 0, 0) + delay + b"\x00\x00"))
        seq += 1
        data = _scanlines(frames[i], level)
        if i == 0:
            out.append(_chunk(b"IDAT", data))
        else:
            out.append(_chunk(b"fdAT", struct.pack(">I", seq) + data))
            seq += 1
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _chunks(data: bytes):
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + length]
        pos += 12 + length


def _unfilter(raw: bytes, h: int, w: int, c: int) -> np.ndarray:
    stride = w * c
    rows = np.frombuffer(raw, np.uint8)[:h * (stride + 1)].reshape(h, stride + 1)
    filters, out = rows[:, 0], rows[:, 1:].copy()
    if filters.any():
        for y in range(h):  # filters 1 (sub) and 2 (up) are what other writers use on simple images
            f = filters[y]
            if f == 1:
                out[y] = np.cumsum(out[y].reshape(w, c), axis=0, dtype=np.uint8).reshape(stride)
            elif f == 2 and y:
                out[y] += out[y - 1]
            elif f == 2:
                pass
            elif f:
                raise ValueError(f"PNG filter {f} is not supported without Pillow")
    return out.reshape(h, w, c)


def decode_png(data: bytes) -> np.ndarray:
    """PNG or APNG bytes as an HxWxC uint8 array (the first frame), or a TxHxWxC array for an APNG of several
    frames. 8-bit, non-interlaced files; ``ValueError`` for others (``decode_image`` then tries Pillow)."""
    header, idat, frames, current = None, [], [], None
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in _CHANNELS or interlace:
                raise ValueError("only 8-bit, non-interlaced PNG is supported without Pillow")
            header = (h, w, _CHANNELS[color])
        elif kind == b"fcTL":
            current = []
            frames.append(current)
        elif kind == b"IDAT":
            idat.append(body)
            if current is not None:
                current.append(body)
        elif kind == b"fdAT" and current is not None:
            current.append(body[4:])
    if header is None:
        raise ValueError("PNG without IHDR")
    if len(frames) > 1:
        return np.stack([_unfilter(zlib.decompress(b"".join(f)), *header) for f in frames])
    return _unfilter(zlib.decompress(b"".join(idat)), *header)


def decode_image(data: bytes) -> np.ndarray:
    """Image bytes (PNG by this module, or any format Pillow reads) as an HxWxC uint8 array."""
    try:
        pixels = decode_png(data)
        return pixels[0] if pixels.ndim == 4 else pixels
    except ValueError:
        pass
    try:
        import io

        from PIL import Image as PILImage
    except ImportError:
        raise ValueError("this image format needs Pillow (pip install 'ml-dash[media]')") from None
    with PILImage.open(io.BytesIO(data)) as img:
        pixels = np.asarray(img.convert("RGBA" if "A" in img.getbands() else "RGB"))
    return pixels


def encode_wav(samples: np.ndarray, rate: int) -> bytes:
    """An NxC array as WAV: int16 as 16-bit PCM, anything else as 32-bit float (both decode to the same values)."""
    n, c = samples.shape
    if samples.dtype == np.int16:
        fmt, bits, data = 1, 16, samples.astype("<i2").tobytes()
    else:
        fmt, bits, data = 3, 32, samples.astype("<f4").tobytes()
    block = c * bits // 8
    header = struct.pack("<4sI4s4sIHHIIHH", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, fmt, c, rate,
                         rate * block, block, bits)
    return header + struct.pack("<4sI", b"data", len(data)) + data


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """WAV bytes (16-bit PCM or 32-bit float) as (an NxC array, the rate)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif kind == b"data" and fmt is not None:
            code, channels, rate, _, _, bits = fmt
            dtype = {(1, 16): "<i2", (3, 32): "<f4"}.get((code, bits))
            if dtype is None:
                raise ValueError(f"WAV format {code} with {bits} bits is not supported")
            return np.frombuffer(body, dtype).reshape(-1, channels), rate
        pos += 8 + length + (length & 1)
    raise ValueError("WAV file without fmt and data chunks")
