"""Torch tensors, touched only when one is met (torch stays optional and is never imported by ml_dash itself).

The rule: the thread that logs never waits for a device. No ``.item()``, ``.cpu()``, ``.numpy()`` or ``.tolist()``
on a device tensor runs there; those happen on the writer thread. (A CPU tensor logged as a metric never gets here:
``ml_dash.client.values.read_cpu_tensor`` reads its number on the caller.)

* ``metrics.log(loss=t)`` — ``capture``: the tensor is detached and cloned on its own device (the caller may change
  it in place later); a CUDA clone is numbered. The writer, before reading one, synchronises the device from its own
  thread once per batch (covering every clone numbered before) and copies the batch's clones to the host with one
  stack and one copy per device and dtype (``read_many``) — no CUDA event and no pinned-memory copy per call, which
  both cost the caller more, and no copy and wait per value on the writer.
* ``metrics.collect(loss=t)`` — ``keep``: a detached clone stays on its device (an asynchronous kernel, no copy).
  ``metrics.flush()`` — ``defer_rows``: the kept tensors are stacked per (device, dtype) on the device and copied
  to the host once; the writer waits once and puts the values back into the rows before it
  aggregates. One device-to-host copy per flush, not one per batch.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

import torch

logger = logging.getLogger("ml_dash")

_SEQ_ATTR = "_ml_dash_seq"  # set on a pinned host tensor whose copy from a CUDA device may still be in flight
_SEQ = itertools.count(1)  # numbers the copies the callers start: next() is atomic under the GIL
_CUDA_DEVICES: set = set()  # devices copies were started from (the writer synchronises these)
_synced_below = 0  # writer side: every copy numbered below this has landed


def _to_host_async(t: Any) -> Any:
    """Start copying device tensor ``t`` to the host; returns the host tensor (numbered when on CUDA).

    No CUDA event per copy: the writer, on meeting a copy not yet known to have landed, synchronises the devices
    once from its own thread, which covers every copy started before — they are all in stream order before it.
    """
    if t.device.type == "cuda":
        buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        buf.copy_(t, non_blocking=True)  # enqueued on the current stream of t's device, after whatever produced t
        device = t.device
        if device not in _CUDA_DEVICES:
            _CUDA_DEVICES.add(device)
        setattr(buf, _SEQ_ATTR, next(_SEQ))  # numbered after the copy was enqueued
        return buf
    # Other accelerators (mps, xpu, ...): an asynchronous clone on the device; the writer copies it (and waits).
    return t.clone()


def _wait_for_copies(seq: int) -> None:
    """Writer side: make sure the copy numbered ``seq`` has landed (one device synchronisation per batch or so)."""
    global _synced_below
    if seq < _synced_below:
        return
    below = next(_SEQ)  # every copy numbered below this was enqueued before the synchronisation that follows
    for device in list(_CUDA_DEVICES):
        torch.cuda.synchronize(device)  # blocks this (writer) thread only; the GIL is released while waiting
    _synced_below = below


def capture(tensor: Any) -> Any:
    """Caller side of ``metrics.log``: keep the value, not the autograd graph, without synchronising the device."""
    t = tensor.detach()
    if t.device.type == "cpu":
        return t.clone()  # 1 element: cheap; later in-place changes by the caller must not alter the logged value
    if t.device.type == "meta":
        raise TypeError("a tensor on the meta device has no value to log")
    # An asynchronous clone on the device, numbered like a host copy: the writer synchronises once per batch and
    # copies it then. Measured on an H200 in a launch-bound loop, this costs the caller less than starting a
    # pinned host copy per call (a pinned allocation + copy launch: ~17 µs and 5% of the step, vs. ~0).
    c = t.clone()
    if c.device.type == "cuda":
        _CUDA_DEVICES.add(c.device)
        setattr(c, _SEQ_ATTR, next(_SEQ))
    return c


def keep(key: str, tensor: Any, where: str = "metrics.collect") -> Any:
    """Caller side of ``metrics.collect``: a 0-d detached clone on the tensor's own device (no copy to the host)."""
    if tensor.numel() != 1 or tensor.dtype.is_complex:
        raise TypeError(f"{where}: {key}= must be a 0-d or 1-element tensor; got shape {tuple(tensor.shape)}")
    if tensor.device.type == "meta":
        raise TypeError(f"{where}: {key}= is on the meta device and has no value to log")
    t = tensor.detach()
    return (t.reshape(()) if t.dim() else t).clone()


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
    tensors, where = [], []
    for i, (_, metrics) in enumerate(rows):
        for key, value in metrics.items():
            if isinstance(value, Tensor):
                tensors.append(value)
                where.append((i, key))
    out = []
    for (device, _), indices in _by_device_and_dtype(tensors).items():
        stacked = torch.stack([tensors[j] for j in indices])  # asynchronous on a device
        out.append((stacked if device.type == "cpu" else _to_host_async(stacked), [where[j] for j in indices]))
    return DeferredRows(rows, out)


def _by_device_and_dtype(tensors: list) -> dict[tuple, list[int]]:
    """The positions in ``tensors`` of each (device, dtype): the tensors one stack can hold."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        group = groups.get((t.device, t.dtype))
        if group is None:
            group = groups[(t.device, t.dtype)] = []
        group.append(i)
    return groups


def _host(tensor: Any) -> Any:
    """Writer side: ``tensor`` as a CPU tensor whose data has arrived (waits on the device if needed)."""
    seq = getattr(tensor, _SEQ_ATTR, None)
    if seq is not None:
        _wait_for_copies(seq)
    return tensor if tensor.device.type == "cpu" else tensor.detach().cpu()


UNREADABLE = object()  # read_many's value for a tensor whose device failed to give it
STACK_CPU = False  # CPU tensors are read one by one: on the host a stack costs more than it saves (tests set it)


def read_many(tensors: list) -> list:
    """Writer side: the values of many 1-element tensors, with one stack and one host copy per (device, dtype).

    Reading device tensors one by one cost a device-to-host copy and a wait each, and each wait hands the GIL to the
    training thread and takes it back. A group that fails is read one by one, so a device error costs only its own
    value (``UNREADABLE``, logged)."""
    out: list = [UNREADABLE] * len(tensors)
    for (device, _), indices in _by_device_and_dtype(tensors).items():
        members = [tensors[i] for i in indices]
        values = _read_stacked(members) if STACK_CPU or device.type != "cpu" else None
        if values is None:
            values = []
            for t in members:
                try:
                    values.append(tensor_to_python(t))
                except Exception as exc:  # a device error: this value only
                    logger.error("ml-dash: a metric value was lost: %s", exc)
                    values.append(UNREADABLE)
        for i, value in zip(indices, values):
            out[i] = value
    return out


def _read_stacked(members: list) -> list | None:
    """One group's values through one stack and one host copy; ``None`` if that failed (read them one by one)."""
    try:
        seq = max(getattr(t, _SEQ_ATTR, 0) for t in members)
        if seq:
            _wait_for_copies(seq)  # clones made on the callers' streams have landed before the stack reads them
        stacked = torch.stack([t.reshape(()) if t.dim() else t for t in members])
        return (stacked if stacked.device.type == "cpu" else stacked.cpu()).tolist()
    except Exception:  # a device error, or a subclass whose stack misbehaves
        return None


def tensor_to_python(tensor: Any, allow_many: bool = False) -> Any:
    """Writer side: a tensor's value as Python numbers; waiting on the device is allowed here."""
    try:
        t = _host(tensor)
        if t.numel() == 1:
            return t.item()  # any shape with one element
        return t.tolist()
    except RuntimeError as exc:  # a device error must drop this value, not the writer's whole batch
        raise ValueError(f"could not read a tensor: {exc}") from exc


def settled(tensor: Any) -> Any:
    """Writer side: a captured tensor once its clone has landed, for work on its own device (media binning)."""
    seq = getattr(tensor, _SEQ_ATTR, None)
    if seq is not None:
        _wait_for_copies(seq)
    return tensor


def to_host(tensor: Any) -> Any:
    """Writer side: a captured tensor as a CPU tensor whose data has arrived (waits on the device if needed)."""
    return _host(tensor)
