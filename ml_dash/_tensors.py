"""Torch tensors, touched only when one is met (torch stays optional and is never imported by ml_dash itself)."""
from __future__ import annotations

from typing import Any


def capture(tensor: Any) -> Any:
    """Caller side: keep the value, not the autograd graph, without synchronising the device."""
    return tensor.detach()


def tensor_to_python(tensor: Any, allow_many: bool = False) -> Any:
    """Writer side: a tensor's value as Python numbers; waiting on the device is allowed here."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if allow_many and t.numel() != 1:
        return t.tolist()
    return t.reshape(()).item() if t.numel() == 1 else t.tolist()
