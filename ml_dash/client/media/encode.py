"""Writer side: a captured media object to (format, bytes, shape, meta). Runs on the writer thread only.

Images are PNG (``format.codecs``, no dependency) or WebP (Pillow); histograms are binned here, a device tensor on
its own device (``torch.histc``) with one host copy of the counts and range; audio is WAV; video is H.264 MP4
through imageio-ffmpeg when it is installed, else an animated PNG (lossless); tables are JSON whose image cells
carry their PNG inline. A bad value (a device tensor out of range, a file that vanished) raises ``ValueError``: the
sink drops that item and logs why.
"""
from __future__ import annotations

import base64
import io
import os
import subprocess
from typing import Any

import numpy as np
import orjson

from ml_dash.client.media.types import Audio, Histogram, Image, Table, Video
from ml_dash.client.values import is_torch_tensor
from ml_dash.format.codecs import encode_apng, encode_png, encode_wav
from ml_dash.format.limits import MAX_MEDIA_ITEM_BYTES
from ml_dash.format.media import pack_histogram

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))
PNG_LEVEL = 6


def _host_array(data: Any) -> np.ndarray:
    if not is_torch_tensor(data):
        return data
    from ml_dash.client.tensors import to_host  # imports torch: only once a tensor was logged

    return to_host(data).numpy()


def _pixels(data: Any, channels_first: bool, where: str) -> np.ndarray:
    """Captured pixels as HxWxC (or TxHxWxC) uint8; a float range the caller could not check is checked here."""
    a = _host_array(data)
    if a.ndim == 2:
        a = a[:, :, None]
    elif channels_first:
        a = np.moveaxis(a, -3, -1)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        return np.ascontiguousarray(a.astype(np.uint8) * 255)
    lo, hi = float(a.min()), float(a.max())
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(f"{where}: float pixels must be in [0, 1]; got min {lo:g}, max {hi:g}")
    return np.rint(a * 255.0).astype(np.uint8)


def _image(item: Image) -> tuple[str, bytes, list, dict]:
    if isinstance(item.data, str):
        return _image_file(item.data)
    pixels = _pixels(item.data, item.channels_first, "Image")
    shape = list(pixels.shape)
    if item.format == "webp":
        from PIL import Image as PILImage

        out = io.BytesIO()
        PILImage.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(out, "WEBP",
                                                                                      quality=item.quality)
        return "webp", out.getvalue(), shape, {}
    return "png", encode_png(pixels, PNG_LEVEL), shape, {}


def _image_file(path: str) -> tuple[str, bytes, list, dict]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MEDIA_ITEM_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"Image({path!r}): {exc.strerror or exc}") from None
    fmt = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
    if fmt is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "webp"
    if fmt is None:
        raise ValueError(f"Image({path!r}): not a PNG, JPEG, GIF or WebP file")
    shape: list = []
    if fmt == "png" and len(data) >= 24:
        shape = [int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")]
    return fmt, data, shape, {"source": os.path.basename(path)}


def bin_histogram(values: Any, bins: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(edges, counts, meta) of ``values`` in ``bins`` equal bins over their finite range. A tensor is binned on its
    own device; its counts and range come to the host in one copy."""
    if is_torch_tensor(values):
        import torch

        from ml_dash.client.tensors import settled

        t = settled(values).detach()
        t = t.reshape(-1) if t.dtype in (torch.float32, torch.float64) else t.reshape(-1).float()
        total = t.numel()
        finite = t[torch.isfinite(t)]
        n = finite.numel()
        if n:
            lo_hi = torch.stack(torch.aminmax(finite)).to(t.dtype)
            counts = torch.histc(finite, bins=bins)  # over the data's own min and max, as the edges below
            host = torch.cat([lo_hi, counts.to(t.dtype)]).cpu().numpy().astype(np.float64)  # the one host copy
            lo, hi, counts_np = float(host[0]), float(host[1]), host[2:]
        else:
            lo = hi = 0.0
            counts_np = np.zeros(bins)
    else:
        a = np.asarray(values).reshape(-1)
        total = a.size
        finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
        n = finite.size
        lo, hi = (float(finite.min()), float(finite.max())) if n else (0.0, 0.0)
        counts_np = np.histogram(finite, bins, (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5))[0].astype(np.float64) \
            if n else np.zeros(bins)
    if hi > lo:
        edges = np.linspace(lo, hi, bins + 1)
    else:  # one value (or none): every count in the middle bin of a unit-wide range
        edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1)
        counts_np = np.zeros(bins)
        counts_np[bins // 2] = n
    return edges, counts_np, {"count": int(n), "nonfinite": int(total - n), "min": lo, "max": hi}


def _histogram(item: Histogram) -> tuple[str, bytes, list, dict]:
    if item.values is None:
        edges, counts = item.edges, item.counts
        meta = {"count": float(counts.sum())}
    else:
        edges, counts, meta = bin_histogram(item.values, item.bins)
    return "hist", pack_histogram(edges, counts), [len(counts)], meta


def _audio(item: Audio) -> tuple[str, bytes, list, dict]:
    a = _host_array(item.data)
    a = a.reshape(-1, 1) if a.ndim == 1 else (a.T if item.transposed else a)
    if a.dtype.kind == "f":
        lo, hi = float(a.min()), float(a.max())
        if not (lo >= -1.0 and hi <= 1.0):
            raise ValueError(f"Audio: float samples must be in [-1, 1]; got min {lo:g}, max {hi:g}")
    return "wav", encode_wav(np.ascontiguousarray(a), item.rate), list(a.shape), {"rate": item.rate}


def video_encoder() -> str:
    """``"mp4"`` when imageio-ffmpeg is installed, else ``"apng"``."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return "apng"
    return "mp4"


def _video(item: Video) -> tuple[str, bytes, list, dict]:
    frames = _pixels(item.data, item.channels_first, "Video")
    fmt = item.format or video_encoder()
    meta = {"fps": item.fps, "frames": int(frames.shape[0])}
    if fmt == "apng":
        return "apng", encode_apng(frames, item.fps, PNG_LEVEL), list(frames.shape), meta
    return "mp4", _mp4(frames, item.fps), list(frames.shape), meta


def _mp4(frames: np.ndarray, fps: float) -> bytes:
    """H.264 in MP4 (yuv420p, what browsers play) through the ffmpeg binary imageio-ffmpeg ships."""
    import imageio_ffmpeg

    t, h, w, c = frames.shape
    if c == 1:
        frames = np.repeat(frames, 3, axis=3)
    elif c == 4:
        frames = frames[..., :3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))  # yuv420p needs even sides
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{frames.shape[2]}x{frames.shape[1]}", "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "-"]
    done = subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, timeout=600)
    if done.returncode != 0:
        raise ValueError(f"Video: ffmpeg failed: {done.stderr.decode(errors='replace')[-300:]}")
    return done.stdout


def _table(item: Table) -> tuple[str, bytes, list, dict]:
    rows = []
    for row in item.rows:
        cells = []
        for cell in row:
            if type(cell) is Image:
                fmt, data, shape, _ = _image(cell)
                cell = {"_type": "image", "format": fmt, "shape": shape, "caption": cell.caption,
                        "data": base64.b64encode(data).decode()}
            cells.append(cell)
        rows.append(cells)
    payload = orjson.dumps({"columns": item.columns, "rows": rows})
    return "table", payload, [len(rows), len(item.columns)], {}


_ENCODERS = {Image: _image, Histogram: _histogram, Audio: _audio, Video: _video, Table: _table}


def encode_item(item: Any) -> tuple[str, bytes, list, dict]:
    """(format, bytes, shape, meta) of one captured media object; ``ValueError`` if it cannot be written."""
    fmt, payload, shape, meta = _ENCODERS[type(item)](item)
    if len(payload) > MAX_MEDIA_ITEM_BYTES:
        raise ValueError(f"{type(item).__name__} encodes to {len(payload)} bytes; an item is at most "
                         f"{MAX_MEDIA_ITEM_BYTES}")
    return fmt, payload, shape, meta
