"""Torch tensors, touched only when one is met (torch stays optional and is never imported by ml_dash itself).

The rule: the thread that logs never waits for a device. No ``.item()``, ``.cpu()``, ``.numpy()`` or ``.tolist()``
runs there; those happen on the writer thread.

* ``metrics.log(loss=t)`` — ``capture``: a CPU tensor is detached and cloned (the caller may change it in place
  later); a CUDA tensor is copied with ``non_blocking=True`` into a pinned host buffer on the tensor's current
  stream and a CUDA event is recorded after the copy. The writer waits on that event, then reads the buffer.
* ``metrics.collect(loss=t)`` — ``keep``: a detached clone stays on its device (an asynchronous kernel, no copy).
  ``metrics.flush()`` — ``defer_rows``: the kept tensors are stacked per (device, dtype) on the device and copied
  to the host once, with one event; the writer waits once and puts the values back into the rows before it
  aggregates. One device-to-host copy per flush, not one per batch.
"""
from __future__ import annotations

from typing import Any

import torch

_EVENT_ATTR = "_ml_dash_event"  # set on a pinned host tensor whose copy from the device may still be in flight
_EVENT_POOL: list = []  # recorded-and-waited-on events, reused (list.pop/append are atomic under the GIL)
_EVENT_POOL_MAX = 256


def _event() -> Any:
    try:
        return _EVENT_POOL.pop()
    except IndexError:
        return torch.cuda.Event()


def _release_event(event: Any) -> None:
    if len(_EVENT_POOL) < _EVENT_POOL_MAX:
        _EVENT_POOL.append(event)


def _to_host_async(t: Any) -> Any:
    """Start copying device tensor ``t`` to the host; returns the host tensor (with an event when on CUDA)."""
    if t.device.type == "cuda":
        buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        buf.copy_(t, non_blocking=True)  # enqueued on the current stream of t's device, after whatever produced t
        event = _event()
        event.record(torch.cuda.current_stream(t.device))
        setattr(buf, _EVENT_ATTR, event)
        return buf
    # Other accelerators (mps, xpu, ...): an asynchronous clone on the device; the writer copies it (and waits).
    return t.clone()


def capture(tensor: Any) -> Any:
    """Caller side of ``metrics.log``: keep the value, not the autograd graph, without synchronising the device."""
    t = tensor.detach()
    if t.device.type == "cpu":
        return t.clone()  # 1 element: cheap; later in-place changes by the caller must not alter the logged value
    if t.device.type == "meta":
        raise TypeError("a tensor on the meta device has no value to log")
    return _to_host_async(t)


def keep(key: str, tensor: Any, where: str = "metrics.collect") -> Any:
    """Caller side of ``metrics.collect``: a 0-d detached clone on the tensor's own device (no copy to the host)."""
    if tensor.numel() != 1 or tensor.dtype.is_complex:
        raise TypeError(f"{where}: {key}= must be a 0-d or 1-element tensor; got shape {tuple(tensor.shape)}")
    if tensor.device.type == "meta":
        raise TypeError(f"{where}: {key}= is on the meta device and has no value to log")
    return tensor.detach().reshape(()).clone()


class DeferredRows:
    """Rows of ``collect()`` whose tensor values are being copied to the host in a few stacked buffers.

    Built on the caller by ``defer_rows``; ``resolve()`` runs on the writer and returns the plain row list.
    """

    __slots__ = ("rows", "groups")

    def __init__(self, rows: list, groups: list) -> None:
        self.rows = rows
        self.groups = groups  # [(host_or_device_buffer, [(row_index, key), ...]), ...]

    def resolve(self) -> list:
        rows = self.rows
        for buf, positions in self.groups:
            try:
                values = _host(buf).tolist()
            except RuntimeError as exc:  # dropped as one bad event, not the writer's whole batch
                raise ValueError(f"could not read collected tensors: {exc}") from exc
            for (i, key), value in zip(positions, values):
                rows[i][1][key] = value
        self.groups = []
        return rows


def defer_rows(rows: list) -> DeferredRows:
    """Caller side of ``metrics.flush``: stack the kept tensors per (device, dtype), start one host copy per stack."""
    Tensor = torch.Tensor
    groups: dict[tuple, tuple[list, list]] = {}
    for i, (_, metrics) in enumerate(rows):
        for key, value in metrics.items():
            if isinstance(value, Tensor):
                group = groups.get((value.device, value.dtype))
                if group is None:
                    group = groups[(value.device, value.dtype)] = ([], [])
                group[0].append(value)
                group[1].append((i, key))
    out = []
    for (device, _), (tensors, positions) in groups.items():
        stacked = torch.stack(tensors)  # asynchronous on a device
        out.append((stacked if device.type == "cpu" else _to_host_async(stacked), positions))
    return DeferredRows(rows, out)


def _host(tensor: Any) -> Any:
    """Writer side: ``tensor`` as a CPU tensor whose data has arrived (waits on the device if needed)."""
    event = getattr(tensor, _EVENT_ATTR, None)
    if event is not None:
        event.synchronize()  # the non-blocking copy into this pinned buffer has landed
        delattr(tensor, _EVENT_ATTR)
        _release_event(event)
    t = tensor.detach()
    return t if t.device.type == "cpu" else t.cpu()


def tensor_to_python(tensor: Any, allow_many: bool = False) -> Any:
    """Writer side: a tensor's value as Python numbers; waiting on the device is allowed here."""
    try:
        t = _host(tensor)
        if allow_many and t.numel() != 1:
            return t.tolist()
        return t.reshape(()).item() if t.numel() == 1 else t.tolist()
    except RuntimeError as exc:  # a device error must drop this value, not the writer's whole batch
        raise ValueError(f"could not read a tensor: {exc}") from exc
