"""Caller-side capture of array data: validate from metadata, copy a CPU array, clone a device tensor (no sync).

numpy is imported when the first media object is made (``import ml_dash`` stays free of it); torch is never imported
here: a torch tensor can only exist once the user imported torch (``client.values.is_torch_tensor``).
"""
from __future__ import annotations

import sys
from typing import Any

from ml_dash.client.values import is_torch_tensor
from ml_dash.format.limits import MAX_CAPTION_CHARS, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

np: Any = None  # numpy, once a media object was made
CHANNELS = (1, 3, 4)


def numpy() -> Any:
    global np
    if np is None:
        import numpy as _numpy_module

        np = _numpy_module
    return np


def check_caption(where: str, caption: Any) -> str | None:
    if caption is None:
        return None
    if not isinstance(caption, str):
        raise TypeError(f"{where}(caption=...): a caption must be a str, got {type(caption).__name__}")
    if len(caption) > MAX_CAPTION_CHARS:
        raise ValueError(f"{where}(caption=...): a caption is at most {MAX_CAPTION_CHARS} characters, got "
                         f"{len(caption)}")
    return caption


def is_device_tensor(value: Any) -> bool:
    """A torch tensor whose values live off the host: read only on the writer."""
    return is_torch_tensor(value) and not value.is_cpu


def cpu_array(value: Any, where: str, argument: str) -> Any:
    """A CPU torch tensor, a PIL image or anything array-like as a numpy array (not yet copied)."""
    np = numpy()
    if type(value) is np.ndarray:
        return value
    if is_torch_tensor(value):
        t = value.detach()
        if t.dtype.is_floating_point and t.dtype.itemsize < 4:  # bfloat16/float16: numpy has no bfloat16
            t = t.float()
        return t.resolve_conj().numpy()
    if type(value).__module__.startswith("PIL."):
        mode = value.mode
        return np.asarray(value if mode in ("L", "RGB", "RGBA") else value.convert("RGBA"))
    try:
        return np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{where}({argument}=...): cannot read a {type(value).__name__} as an array: {exc}") from None


def device_clone(tensor: Any) -> Any:
    """A detached clone of a device tensor on its own device: an asynchronous kernel, no host read, numbered so the
    writer synchronises once before reading it (``client.tensors``)."""
    from ml_dash.client.tensors import capture

    return capture(tensor)


def image_layout(shape: tuple, where: str, argument: str = "data") -> tuple[int, int, int, bool]:
    """(height, width, channels, channels_first) of an image's shape: HW, HWC or CHW with C in 1, 3, 4 (HWC wins
    when both ends could be channels)."""
    if len(shape) == 2:
        h, w, c, first = shape[0], shape[1], 1, False
    elif len(shape) == 3 and shape[2] in CHANNELS:
        h, w, c, first = shape[0], shape[1], shape[2], False
    elif len(shape) == 3 and shape[0] in CHANNELS:
        c, h, w, first = shape[0], shape[1], shape[2], True
    else:
        raise ValueError(f"{where}({argument}=...): an image is HxW, HxWxC or CxHxW with C in 1, 3 or 4; got shape "
                         f"{tuple(shape)}")
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE) or h * w > MAX_IMAGE_PIXELS:
        raise ValueError(f"{where}({argument}=...): an image is 1 to {MAX_IMAGE_SIDE} pixels on each side and at "
                         f"most {MAX_IMAGE_PIXELS} pixels; got {h}x{w}")
    return h, w, c, first


def check_pixels(array: Any, channels: int, where: str, argument: str = "data") -> None:
    """A CPU image's dtype and, for floats, its range: [0, 1] (NaN refused), checked here where the call is."""
    kind = array.dtype.kind
    if kind == "u" and array.dtype.itemsize == 1:
        return
    if kind == "b":
        return
    if kind != "f":
        raise TypeError(f"{where}({argument}=...): pixels must be uint8 or float in [0, 1]; got {array.dtype}")
    lo, hi = float(array.min()), float(array.max())
    if not (lo >= 0.0 and hi <= 1.0):  # NaN fails both comparisons
        raise ValueError(f"{where}({argument}=...): a float image holds values in [0, 1]; this {channels}-channel "
                         f"{array.dtype} image has min {lo:g} and max {hi:g} (scale it, or pass uint8)")


def check_device_dtype(tensor: Any, where: str, argument: str, allowed: str) -> None:
    """dtype checks a device tensor allows from its metadata alone (its values are checked by the writer)."""
    dtype = tensor.dtype
    if dtype.is_complex or not (dtype.is_floating_point or str(dtype) in allowed):
        raise TypeError(f"{where}({argument}=...): unsupported dtype {dtype}")


def torch_module() -> Any:
    return sys.modules.get("torch")
