"""What the integrations share: turning framework config into storable parameters, copying checkpoint files."""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from typing import Any, Callable

from ml_dash import Experiment, detect_rank

logger = logging.getLogger("ml_dash")

_PLAIN = (str, int, float, bool, type(None))


def plain(value: Any, depth: int = 0) -> Any:
    """A value ``exp.params`` stores: dicts (str keys) and lists kept, numbers, strings, arrays and tensors as they
    are, anything else (a class, a function, a module, a dtype) as its ``str()``. Nested dicts stay nested."""
    if isinstance(value, _PLAIN):
        return value
    if depth > 20:
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, depth + 1) for v in value]
    if type(value).__module__.split(".")[0] in ("numpy", "torch") and hasattr(value, "shape"):
        return value  # numpy arrays and scalars, torch tensors: ml-dash converts them on its writer thread
    return str(value)


def set_params(exp: Experiment, params: dict, first: bool) -> None:
    """The first call of a logger replaces the parameters (``set``), later ones merge into them (``extend``)."""
    params = plain(params)
    if first:
        exp.params.set(**params)
    else:
        exp.params.extend(**params)


def numeric(values: dict, warned: set, where: str) -> dict:
    """``values`` without what ``metrics.log`` refuses (strings, lists), each dropped key warned about once."""
    kept = {}
    for k, v in values.items():
        if isinstance(v, (bool, int, float)) or v is None or hasattr(v, "shape"):
            kept[str(k)] = v
        elif k not in warned:
            warned.add(k)
            logger.warning("ml-dash %s: %r is a %s, not a number: not logged as a metric", where, k, type(v).__name__)
    return kept


def unique_prefix(base: str) -> str:
    """``<base>/<YYYYmmdd-HHMMSS>-<4 hex>``: a new experiment per run of a script, as W&B names each run, instead of
    every run of it appending to one experiment."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "run"
    return f"{base}/{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def next_version(parent: str) -> str:
    """``version_N``, N one more than the highest under ``parent`` (as Lightning's own loggers number runs); the
    directory is created here so that two processes starting together never take the same N."""
    os.makedirs(parent, exist_ok=True)
    taken = [int(m.group(1)) for n in os.listdir(parent) if (m := re.fullmatch(r"version_(\d+)", n))]
    n = max(taken, default=-1) + 1
    while True:
        try:
            os.mkdir(os.path.join(parent, f"version_{n}"))
            return f"version_{n}"
        except FileExistsError:
            n += 1


def copy_into_files(exp: Experiment, source: str, namespace: str, name: str) -> str:
    """Put the file ``source`` at ``files/<namespace>/<name>`` of ``exp`` atomically: a hard link where the file
    system allows one (a checkpoint is then on disk once, and the framework deleting its own copy keeps ours), else
    a streamed copy. Made outside ``files/`` (so the uploader never sees half a file) and renamed into place."""
    target_dir = exp.files(namespace).directory
    target = os.path.join(target_dir, *name.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.makedirs(exp.local_path, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".copy-", dir=exp.local_path)
    os.close(fd)
    try:
        try:
            os.unlink(tmp)
            os.link(source, tmp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def copy_tree_into_files(exp: Experiment, source_dir: str, namespace: str) -> int:
    """Copy every file below ``source_dir`` into ``files/<namespace>/``; returns how many."""
    count = 0
    for dirpath, _dirs, names in os.walk(source_dir):
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, source_dir).replace(os.sep, "/")
            copy_into_files(exp, full, namespace, rel)
            count += 1
    return count


# How long a rank > 0 waits for rank 0 to publish the job's experiment (rank 0 builds it at its first use, at the start
# of training); past this it logs under its own prefix and says so.
JOB_WAIT_S = 600.0
_published = [0]  # experiments this process has published or read: the i-th logger of every rank meets at one key


def _default_store() -> Any:
    """The key-value store of an initialised ``torch.distributed`` process group (torch never imported here)."""
    import sys

    torch = sys.modules.get("torch")
    try:
        dist = torch.distributed  # type: ignore[union-attr]
        if dist.is_available() and dist.is_initialized():
            from torch.distributed.distributed_c10d import _get_default_store

            return _get_default_store()
    except Exception:  # noqa: BLE001  (no torch, no process group, a backend without a store)
        return None
    return None


def job_kwargs(kwargs: dict, prefix: Callable[[], str]) -> dict:
    """``Experiment`` arguments for this rank of the job: every rank of a distributed job builds its ``Experiment``
    with the job's identity (``rank``, ``world_size``, ``job_id``; docs/distributed.md), in rank 0's experiment. Rank 0
    picks the prefix (``prefix()`` when none was given: ``version_N``, a time-stamped name) and its job id, and
    publishes both in the process group's store; ranks > 0 read them there (a key read, not a collective: it never
    waits for the other ranks to reach the same line). Without a process group the launcher's variables must agree
    (torchrun, SLURM, MPI; ``client/ranks.py``), and ``prefix`` should be given."""
    import json
    from datetime import timedelta


    kwargs = dict(kwargs)
    info = detect_rank()
    if not info.distributed:
        kwargs["prefix"] = kwargs["prefix"] or prefix()
        return kwargs
    kwargs.update(rank=info.rank, world_size=info.world_size, job_id=info.job_id)
    store = _default_store()
    _published[0] += 1
    key = f"ml_dash/experiment/{_published[0]}"
    if store is None:
        kwargs["prefix"] = kwargs["prefix"] or prefix()
    elif info.rank == 0:
        kwargs["prefix"] = kwargs["prefix"] or prefix()
        store.set(key, json.dumps([kwargs["prefix"], info.job_id]))
    else:
        try:
            store.wait([key], timedelta(seconds=JOB_WAIT_S))
            kwargs["prefix"], kwargs["job_id"] = json.loads(store.get(key))
        except Exception as exc:  # noqa: BLE001  (rank 0 never logged, or the store went away)
            kwargs["prefix"] = kwargs["prefix"] or prefix()
            logger.warning("ml-dash: rank %d did not learn rank 0's experiment (%s); logging to %s", info.rank, exc,
                           kwargs["prefix"])
    return kwargs
