"""The media types of the public API: ``Image``, ``Histogram``, ``Audio``, ``Video`` and ``Table``.

Making one is the caller's whole cost (docs/media.md): it checks what can be checked from the object (shape, dtype,
sizes, a CPU array's range) and captures the data: a CPU array is copied (callers reuse buffers), a device tensor is
cloned on its device without a sync, a file path is only checked. Encoding and histogram binning run on the writer
(``client/media/encode.py``). Every error names the argument that is wrong.
"""
from __future__ import annotations

import math
import os
from typing import Any

from ml_dash.client.media import capture as _capture
from ml_dash.client.media.capture import (
    CHANNELS,
    check_caption,
    check_device_dtype,
    check_pixels,
    cpu_array,
    device_clone,
    image_layout,
    is_device_tensor,
)
from ml_dash.client.values import is_torch_tensor
from ml_dash.format.limits import (
    MAX_AUDIO_CHANNELS,
    MAX_AUDIO_RATE,
    MAX_AUDIO_SAMPLES,
    MAX_HISTOGRAM_BINS,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_TABLE_COLUMNS,
    MAX_TABLE_ROWS,
    MAX_VIDEO_FRAMES,
)

IMAGE_FORMATS = ("png", "webp")
_pillow: list[bool] = []  # whether Pillow imports, asked once


def _has_pillow() -> bool:
    if not _pillow:
        import importlib.util

        _pillow.append(importlib.util.find_spec("PIL") is not None)
    return _pillow[0]


class Image:
    """An image: a numpy array (HxW, HxWxC or CxHxW, C in 1/3/4; uint8, bool or float in [0, 1]), a torch tensor on
    any device, a PIL image or a file path (PNG, JPEG, GIF, WebP: stored as it is). ``format``: ``"png"``
    (lossless, the default) or ``"webp"`` (lossy at ``quality``, needs Pillow)."""

    __slots__ = ("data", "caption", "format", "quality", "channels_first", "shape", "nbytes")
    kind = "image"

    def __init__(self, data: Any, caption: str | None = None, *, format: str = "png", quality: int = 90) -> None:
        np = _capture.np or _capture.numpy()
        if caption is not None:
            caption = check_caption("Image", caption)
        if format != "png":
            if format not in IMAGE_FORMATS:
                raise ValueError(f"Image(format={format!r}): format must be 'png' or 'webp'")
            if not _has_pillow():
                raise ValueError("Image(format='webp') needs Pillow: pip install 'ml-dash[media]'")
            if type(quality) is not int or not 1 <= quality <= 100:
                raise ValueError(f"Image(quality={quality!r}): quality must be an int from 1 to 100")
        self.caption, self.format, self.quality = caption, format, quality
        if type(data) is np.ndarray and data.dtype.char == "B":  # the common case, inlined: uint8 pixels
            h, w, c, first = image_layout(data.shape, "Image")
            self.data = data.copy()
        elif isinstance(data, (str, os.PathLike)):
            path = os.fspath(data)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"Image(data={path!r}): no such file")
            self.data, self.channels_first, self.shape, self.nbytes = path, False, (), 0
            return
        elif is_device_tensor(data):
            h, w, c, first = image_layout(tuple(data.shape), "Image")
            check_device_dtype(data, "Image", "data", "torch.uint8 torch.bool")
            self.data = device_clone(data)  # its range is checked by the writer: reading it here would sync
        else:
            array = cpu_array(data, "Image", "data")
            h, w, c, first = image_layout(array.shape, "Image")
            check_pixels(array, c, "Image")
            self.data = array.copy() if array is data or not array.flags.owndata else array
        self.channels_first, self.shape, self.nbytes = first, (h, w, c), self.data.nbytes

    def __repr__(self) -> str:
        return f"Image(shape={self.shape}, caption={self.caption!r})"


class Histogram:
    """A histogram: ``values`` of any size (a numpy array, a list, a torch tensor on any device), binned into
    ``bins`` equal bins over their finite range by the writer (on the tensor's own device); or precomputed
    ``edges`` (bins + 1, increasing) and ``counts`` (bins, non-negative). ``copy=False`` keeps a CPU array without
    copying it: the caller then must not change it until it is written (``exp.flush()``)."""

    __slots__ = ("values", "bins", "edges", "counts", "nbytes")
    kind = "histogram"

    def __init__(self, values: Any = None, bins: int = 64, *, edges: Any = None, counts: Any = None,
                 copy: bool = True) -> None:
        np = _capture.np or _capture.numpy()
        if type(bins) is not int or not 1 <= bins <= MAX_HISTOGRAM_BINS:
            raise ValueError(f"Histogram(bins={bins!r}): bins must be an int from 1 to {MAX_HISTOGRAM_BINS}")
        self.bins, self.edges, self.counts = bins, None, None
        if values is None:
            if edges is None or counts is None:
                raise ValueError("Histogram(values=...): give values, or both edges= and counts=")
            self.edges, self.counts = _precomputed(np, edges, counts)
            self.values, self.bins, self.nbytes = None, len(self.counts), self.edges.nbytes + self.counts.nbytes
            return
        if edges is not None or counts is not None:
            raise ValueError("Histogram(values=...): give values, or edges= and counts=, not both")
        if is_torch_tensor(values):
            if values.numel() == 0:
                raise ValueError("Histogram(values=...): the tensor is empty")
            if values.dtype.is_complex or str(values.dtype) == "torch.bool":
                raise TypeError(f"Histogram(values=...): unsupported dtype {values.dtype}")
            self.values = device_clone(values) if not values.is_cpu or copy else values.detach()
        else:
            array = cpu_array(values, "Histogram", "values")
            if array.size == 0:
                raise ValueError("Histogram(values=...): the array is empty")
            if array.dtype.kind not in "iuf":
                raise TypeError(f"Histogram(values=...): values must be numbers, got dtype {array.dtype}")
            self.values = array.copy() if copy and (array is values or not array.flags.owndata) else array
        self.nbytes = self.values.nbytes if hasattr(self.values, "nbytes") else \
            self.values.numel() * self.values.element_size()

    def __repr__(self) -> str:
        return f"Histogram(bins={self.bins})"


def _precomputed(np: Any, edges: Any, counts: Any) -> tuple[Any, Any]:
    e = np.array(cpu_array(edges, "Histogram", "edges"), dtype=np.float64).reshape(-1)
    c = np.array(cpu_array(counts, "Histogram", "counts"), dtype=np.float64).reshape(-1)
    if not 1 <= len(c) <= MAX_HISTOGRAM_BINS:
        raise ValueError(f"Histogram(counts=...): 1 to {MAX_HISTOGRAM_BINS} bins, got {len(c)}")
    if len(e) != len(c) + 1:
        raise ValueError(f"Histogram(edges=...): {len(c)} counts need {len(c) + 1} edges, got {len(e)}")
    if not np.isfinite(e).all() or not (np.diff(e) > 0).all():
        raise ValueError("Histogram(edges=...): edges must be finite and strictly increasing")
    if not np.isfinite(c).all() or (c < 0).any():
        raise ValueError("Histogram(counts=...): counts must be finite and non-negative")
    return e, c


class Audio:
    """A clip: ``samples`` (N, NxC or CxN with C up to 16; int16, or float in [-1, 1]) at ``rate`` samples per
    second, stored as WAV (exact: 16-bit PCM or 32-bit float)."""

    __slots__ = ("data", "rate", "caption", "transposed", "shape", "nbytes")
    kind = "audio"

    def __init__(self, samples: Any, rate: int, caption: str | None = None) -> None:
        if type(rate) is not int or not 1 <= rate <= MAX_AUDIO_RATE:
            raise ValueError(f"Audio(rate={rate!r}): rate must be an int from 1 to {MAX_AUDIO_RATE}")
        self.rate, self.caption = rate, check_caption("Audio", caption)
        shape = tuple(samples.shape) if hasattr(samples, "shape") else None
        array = None
        if shape is None or not is_device_tensor(samples):
            array = cpu_array(samples, "Audio", "samples")
            shape = array.shape
        if len(shape) == 1:
            n, c, transposed = shape[0], 1, False
        elif len(shape) == 2 and shape[1] <= MAX_AUDIO_CHANNELS:
            n, c, transposed = shape[0], shape[1], False
        elif len(shape) == 2 and shape[0] <= MAX_AUDIO_CHANNELS:
            n, c, transposed = shape[1], shape[0], True
        else:
            raise ValueError(f"Audio(samples=...): samples are N, NxC or CxN with C up to {MAX_AUDIO_CHANNELS}; got "
                             f"shape {shape}")
        if not 0 < n <= MAX_AUDIO_SAMPLES or c < 1:
            raise ValueError(f"Audio(samples=...): 1 to {MAX_AUDIO_SAMPLES} samples per channel, got {n}")
        if array is None:
            check_device_dtype(samples, "Audio", "samples", "torch.int16")
            self.data = device_clone(samples)
        else:
            kind = array.dtype.kind
            if kind == "f":
                lo, hi = float(array.min()), float(array.max())
                if not (lo >= -1.0 and hi <= 1.0):
                    raise ValueError(f"Audio(samples=...): float samples are in [-1, 1]; got min {lo:g}, max {hi:g}")
            elif array.dtype.str[1:] != "i2":
                raise TypeError(f"Audio(samples=...): samples must be int16 or float, got {array.dtype}")
            self.data = array.copy()
        self.transposed, self.shape, self.nbytes = transposed, (n, c), self.data.nbytes if array is not None else 0


class Video:
    """Frames (TxHxWxC or TxCxHxW, C in 1/3/4; uint8 or float in [0, 1]; a numpy array or a torch tensor) played at
    ``fps``. ``format``: ``"mp4"`` (H.264 through imageio-ffmpeg, lossy) or ``"apng"`` (animated PNG, lossless);
    the default is mp4 when imageio-ffmpeg is installed, else apng."""

    __slots__ = ("data", "fps", "caption", "format", "channels_first", "shape", "nbytes")
    kind = "video"

    def __init__(self, frames: Any, fps: float = 30, caption: str | None = None, *, format: str | None = None) -> None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (0 < fps <= 1000):
            raise ValueError(f"Video(fps={fps!r}): fps must be a number in (0, 1000]")
        if format not in (None, "mp4", "apng"):
            raise ValueError(f"Video(format={format!r}): format must be 'mp4' or 'apng'")
        self.fps, self.caption, self.format = float(fps), check_caption("Video", caption), format
        device = is_device_tensor(frames)
        array = None if device else cpu_array(frames, "Video", "frames")
        shape = tuple(frames.shape) if device else array.shape
        if len(shape) != 4:
            raise ValueError(f"Video(frames=...): frames are TxHxWxC or TxCxHxW; got shape {shape}")
        t = shape[0]
        first = shape[3] not in CHANNELS and shape[1] in CHANNELS
        h, w, c, _ = image_layout(shape[1:] if not first else (shape[2], shape[3], shape[1]), "Video", "frames")
        if not 0 < t <= MAX_VIDEO_FRAMES or t * h * w > MAX_IMAGE_PIXELS * 4:
            raise ValueError(f"Video(frames=...): 1 to {MAX_VIDEO_FRAMES} frames and at most "
                             f"{MAX_IMAGE_PIXELS * 4} pixels in all; got {t} frames of {h}x{w}")
        if device:
            check_device_dtype(frames, "Video", "frames", "torch.uint8")
            self.data = device_clone(frames)
        else:
            check_pixels(array, c, "Video", "frames")
            self.data = array.copy()
        self.channels_first, self.shape, self.nbytes = first, (t, h, w, c), self.data.nbytes


class Table:
    """Rows and columns: ``data`` is a list of rows (lists, or dicts by column) or a pandas DataFrame; cells hold
    None, bool, int, float, str or ``Image``. ``columns`` names them (default: the DataFrame's, the dicts' keys, or
    ``"0"``, ``"1"``...)."""

    __slots__ = ("columns", "rows", "nbytes")
    kind = "table"

    def __init__(self, data: Any, columns: list[str] | None = None) -> None:
        if type(data).__module__.startswith("pandas.") and hasattr(data, "itertuples"):
            columns = [str(c) for c in data.columns] if columns is None else columns
            data = [list(row) for row in data.itertuples(index=False, name=None)]
        if not isinstance(data, (list, tuple)):
            raise TypeError(f"Table(data=...): a list of rows or a pandas DataFrame, got {type(data).__name__}")
        if not data:
            raise ValueError("Table(data=...): a table needs at least one row")
        if len(data) > MAX_TABLE_ROWS:
            raise ValueError(f"Table(data=...): at most {MAX_TABLE_ROWS} rows, got {len(data)}")
        if columns is None:
            columns = list(data[0]) if isinstance(data[0], dict) else [str(i) for i in range(len(data[0]))]
        if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
            raise TypeError("Table(columns=...): columns must be a list of str")
        if not 0 < len(columns) <= MAX_TABLE_COLUMNS:
            raise ValueError(f"Table(columns=...): 1 to {MAX_TABLE_COLUMNS} columns, got {len(columns)}")
        rows, nbytes = [], 0
        for r, row in enumerate(data):
            cells = [row.get(c) for c in columns] if isinstance(row, dict) else list(row)
            if len(cells) != len(columns):
                raise ValueError(f"Table(data=...): row {r} has {len(cells)} cells for {len(columns)} columns")
            for i, cell in enumerate(cells):
                cells[i], size = _cell(cell, r, columns[i])
                nbytes += size
            rows.append(cells)
        self.columns, self.rows, self.nbytes = list(columns), rows, nbytes


_CELL_TYPES = (type(None), bool, int, float, str)


def _cell(value: Any, row: int, column: str) -> tuple[Any, int]:
    if type(value) in _CELL_TYPES:
        if type(value) is float and not math.isfinite(value):
            return None, 8
        return value, len(value) if type(value) is str else 8
    if type(value) is Image:
        return value, value.nbytes
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a numpy scalar
        return _cell(value.item(), row, column)
    raise TypeError(f"Table(data=...): the cell at row {row}, column {column!r} is a {type(value).__name__}; cells "
                    "hold None, bool, int, float, str or Image")


MEDIA_TYPES = (Image, Histogram, Audio, Video, Table)
