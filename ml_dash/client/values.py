"""Value checks for the hot path and conversions for the writer.

The caller only checks ``type(v)`` against a set of known-good types (a few ns per value); anything unusual
goes through ``check_metric_value`` once. Conversion to JSON-ready Python values happens on the writer thread.

Non-finite floats: JSON has no NaN/Infinity, and orjson would silently write ``null``. ml-dash writes them as
the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (the spellings JavaScript's ``Number()`` parses) and
``metrics.read()`` turns them back into floats. Metric values are numbers only, so this decoding is unambiguous.
"""
from __future__ import annotations

import sys
from typing import Any

from ml_dash.format.values import nonfinite_text

# Types accepted on the hot path without further thought. Grows as numpy scalar types are met.
METRIC_TYPES: set[type] = {float, int, bool, type(None)}
PLAIN_TYPES = frozenset((float, int, bool, type(None)))  # what orjson writes as is (non-finite floats aside)

# Exactly these tensor classes are read on the caller when they live on the CPU (see ``read_cpu_tensor``); other
# subclasses (a DTensor, say) may do anything in ``tolist()`` and take the general path.
CPU_READ_TYPES: set[type] = set()


def _numpy() -> Any:
    """numpy, or ``None`` while nobody has imported it: then no value can be a numpy value, and ``import ml_dash``
    stays free of numpy's ~45 ms."""
    return sys.modules.get("numpy")


def is_torch_tensor(value: Any) -> bool:
    """Recognise a torch tensor, subclasses included, without importing torch (importing ml_dash must never import
    it): no tensor can exist before torch is imported."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def read_cpu_tensor(key: str, value: Any, where: str) -> Any:
    """A CPU tensor's one value as a Python number, read on the caller; ``None`` for a tensor of another kind.

    ``tolist()`` keeps the GIL while it reads (``clone()``, ``detach()``, ``item()`` and ``float()`` each release and
    take it back, and the caller then waits out the writer's switch interval, up to 5 ms) and leaves nothing
    GC-tracked in the queue; reading a CPU tensor never waits for a device, and a later in-place change cannot alter
    a number already read.
    """
    if not value.is_cpu:
        return None
    if value.dim() and value.numel() != 1:
        raise TypeError(f"{where}: {key}= must be a 0-d or 1-element tensor; got shape {tuple(value.shape)}")
    try:
        number = value.tolist()
    except Exception:  # a layout tolist() cannot read (sparse, quantized): the general path decides
        return None
    while type(number) is list:  # 1-element tensors of any shape: [[x]] -> x
        number = number[0]
    if type(number) not in PLAIN_TYPES:
        raise TypeError(f"{where}: {key}= must be a real-valued tensor; got dtype {value.dtype}")
    return number


def check_metric_value(key: str, value: Any, where: str = "metrics.log") -> Any:
    """Slow path of the hot-path type check: the value to queue, or ``TypeError`` naming ``key``."""
    if type(value) in CPU_READ_TYPES:
        number = read_cpu_tensor(key, value, where)
        if number is not None:
            return number
    np = _numpy()
    if np is not None:
        if isinstance(value, (np.floating, np.integer, np.bool_)):
            METRIC_TYPES.add(type(value))
            return value
        if isinstance(value, np.ndarray):
            if value.size == 1 and value.dtype.kind in "fiub":
                return value.item()  # read now: the caller may overwrite its array in place (no device here)
            raise TypeError(f"{where}: {key}= must be a scalar; got a numpy array of shape {value.shape} and dtype {value.dtype}")
    if is_torch_tensor(value):
        # numel() and dtype are metadata: reading them never synchronises a GPU.
        if value.numel() == 1 and not value.dtype.is_complex:
            learn_tensor_type(type(value))
            if type(value) in CPU_READ_TYPES:
                number = read_cpu_tensor(key, value, where)
                if number is not None:
                    return number
            from ml_dash.client.tensors import capture

            return capture(value)
        raise TypeError(f"{where}: {key}= must be a 0-d or 1-element tensor; got shape {tuple(value.shape)}")
    if isinstance(value, (int, float)):
        return value
    raise TypeError(f"{where}: {key}= has type {type(value).__name__}; expected a number (int, float, bool, numpy scalar or 1-element tensor)")


def learn_tensor_type(cls: type) -> None:
    """Admit ``torch.Tensor`` and ``torch.nn.Parameter`` (only these) to ``CPU_READ_TYPES`` once one is met."""
    torch = sys.modules.get("torch")
    if torch is not None and (cls is torch.Tensor or cls is torch.nn.Parameter):
        CPU_READ_TYPES.add(cls)


def metric_to_python(value: Any) -> Any:
    """Writer side: one metric value to an int/float/bool/None/non-finite text."""
    t = type(value)
    if t is float:
        return value if value - value == 0.0 else nonfinite_text(value)
    if t is int or t is bool or value is None:
        if t is int and not -(2**63) <= value < 2**64:
            return float(value)
        return value
    if is_torch_tensor(value):
        from ml_dash.client.tensors import (
            tensor_to_python,  # torch is already imported if we see a tensor
        )

        return metric_to_python(tensor_to_python(value))
    np = _numpy()
    if np is not None and isinstance(value, (np.ndarray, np.generic)):
        return metric_to_python(value.item())
    if isinstance(value, float):  # float subclasses
        return metric_to_python(float(value))
    if isinstance(value, int):
        return metric_to_python(int(value))
    raise TypeError(f"cannot convert {type(value).__name__} to a metric value")


def clean_metrics(metrics: dict, namespace: str | None, tensors: list | None = None) -> dict:
    """Writer side: apply the namespace and convert every value in place (the dict is ours: it came from **kwargs).

    With a ``tensors`` list, a tensor is left in place and ``(row, name, tensor)`` appended: ``read_metric_tensors``
    then reads them all at once (one stacked host copy per device and dtype, not one copy and wait per value)."""
    if namespace:
        metrics = {namespace + k: v for k, v in metrics.items()}
    for k, v in metrics.items():
        t = type(v)
        if t is float:
            if v - v != 0.0:
                metrics[k] = nonfinite_text(v)
        elif t is not int and t is not bool and v is not None:
            if tensors is not None and is_torch_tensor(v):
                tensors.append((metrics, k, v))
            else:
                metrics[k] = metric_to_python(v)
    return metrics


def read_metric_tensors(found: list) -> None:
    """Writer side: put the numbers of the tensors ``clean_metrics`` set aside into their rows, and empty ``found``.

    A tensor that cannot be read (a device error) loses its value only, with an ERROR: its row keeps the rest."""
    from ml_dash.client.tensors import UNREADABLE, read_many  # torch is already imported if we see a tensor

    values = read_many([tensor for _, _, tensor in found])
    for (metrics, key, _), value in zip(found, values):
        if value is UNREADABLE:
            del metrics[key]
        else:
            metrics[key] = metric_to_python(value)
    found.clear()


def check_step(step: Any, where: str) -> Any:
    if type(step) is int or step is None:
        return step
    np = _numpy()
    if isinstance(step, int) and not isinstance(step, bool) or np is not None and isinstance(step, np.integer):
        return int(step)
    raise TypeError(f"{where}: step= must be an int or None, got {type(step).__name__}")


class DeferredTensor:
    """A tensor inside a parameter/log record, captured on the caller (detached clone, no device sync) and turned
    into numbers by the writer thread (``resolve_deferred``)."""

    __slots__ = ("tensor", "where", "key")

    def __init__(self, tensor: Any, where: str, key: str) -> None:
        self.tensor, self.where, self.key = tensor, where, key


def resolve_deferred(value: Any) -> Any:
    """Writer side: ``value`` with every ``DeferredTensor`` inside replaced by its numbers (waiting on the device)."""
    if type(value) is DeferredTensor:
        from ml_dash.client.tensors import tensor_to_python

        return to_jsonable(tensor_to_python(value.tensor, allow_many=True), value.where, value.key)
    if type(value) is dict:
        return {k: resolve_deferred(v) for k, v in value.items()}
    if type(value) is list:
        return [resolve_deferred(v) for v in value]
    return value


def to_jsonable(value: Any, where: str, key: str, deferred: list | None = None) -> Any:
    """Deep-convert a parameter/context value to plain JSON types; ``TypeError`` names the offending key path.

    With a ``deferred`` list, torch tensors are not read here (that could wait on a GPU): each becomes a
    ``DeferredTensor`` (also appended to the list) for the writer to resolve.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if value - value == 0.0 else nonfinite_text(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str; {key}.{k!r} is {type(k).__name__}")
            out[k] = to_jsonable(v, where, f"{key}.{k}", deferred)
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, where, f"{key}[{i}]", deferred) for i, v in enumerate(value)]
    np = _numpy()
    if np is not None and (isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0)):
        return to_jsonable(value.item(), where, key)
    if np is not None and isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), where, key)
    if is_torch_tensor(value):
        if value.dtype.is_complex or value.device.type == "meta":
            raise TypeError(f"{where}: {key}= is a {value.dtype} tensor on {value.device}, which has no JSON value")
        if deferred is not None:
            from ml_dash.client.tensors import capture

            placeholder = DeferredTensor(capture(value), where, key)
            deferred.append(placeholder)
            return placeholder
        from ml_dash.client.tensors import tensor_to_python

        return to_jsonable(tensor_to_python(value, allow_many=True), where, key)
    for base in (bool, int, float, str):  # subclasses such as enum.IntEnum or str-based enums
        if isinstance(value, base):
            return to_jsonable(base(value), where, key)
    raise TypeError(f"{where}: {key}= has type {type(value).__name__}, which cannot be stored as JSON")
