"""Which rank of which distributed job this process is (docs/distributed.md), found without any communication.

The rank and world size: the ``Experiment`` arguments, else ML_DASH_RANK / ML_DASH_WORLD_SIZE, else an initialised
``torch.distributed`` (only if torch is already imported: never imported here), else the launchers' variables.

The job id must come out the same on every rank of a job, on every host, without talking to the others, and differ
between two jobs. The first that applies:

1. ``job_id=`` / ML_DASH_JOB_ID;
2. ``TORCHELASTIC_RUN_ID`` (torchrun's rendezvous id; its placeholder ``none`` does not count);
3. ``SLURM_JOB_ID`` (with ``SLURM_STEP_ID``: each ``srun`` step of an allocation is a job of its own);
4. ``PMIX_NAMESPACE`` / ``OMPI_MCA_orte_ess_jobid`` (Open MPI's job);
5. ``MASTER_ADDR:MASTER_PORT`` with the host, the parent process's id and its start time (``torch.multiprocessing.spawn``
   and other single-host launchers: the ranks are children of one process). Ranks on several hosts launched by hand,
   with none of the above, must pass ``job_id=`` (each host would otherwise be a job of its own).

A process that is not part of a job (world size 1 or unknown, rank 0) gets no job id: a plain run.
"""
from __future__ import annotations

import os
import sys
from typing import NamedTuple

from ml_dash.settings import JOB_ID, RANK, WORLD_SIZE

_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
_WORLD_VARIABLES = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_LOCAL_VARIABLES = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")


class Rank(NamedTuple):
    rank: int  # 0 for a plain run
    world_size: int  # 1 for a plain run
    local_rank: int | None
    job_id: str | None  # None: a plain run (the server uses the run's own id)

    @property
    def distributed(self) -> bool:
        return self.job_id is not None


def _int_env(names: tuple[str, ...], environ: dict) -> int | None:
    for name in names:
        raw = environ.get(name)
        if raw not in (None, ""):
            try:
                return int(raw)
            except ValueError:
                continue
    return None


def _torch_rank() -> tuple[int, int] | None:
    torch = sys.modules.get("torch")  # never imported here: a process that did not import torch is not using it
    dist = getattr(torch, "distributed", None) if torch is not None else None
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
    except Exception:  # noqa: BLE001  (a half-torn-down process group says nothing we can use)
        return None
    return None


def _parent_start(ppid: int) -> str:
    try:
        with open(f"/proc/{ppid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()  # field 22: starttime, in clock ticks
    except (OSError, IndexError):
        return "0"


def derived_job_id(environ: dict) -> str:
    """The job id from the launcher's variables (rules 2-5 of the module doc)."""
    elastic = environ.get("TORCHELASTIC_RUN_ID")
    if elastic and elastic != "none":
        return f"torchelastic:{elastic}"
    if environ.get("SLURM_JOB_ID"):
        step = environ.get("SLURM_STEP_ID")
        return f"slurm:{environ['SLURM_JOB_ID']}" + (f".{step}" if step else "")
    mpi = environ.get("PMIX_NAMESPACE") or environ.get("OMPI_MCA_orte_ess_jobid")
    if mpi:
        return f"mpi:{mpi}"
    import socket

    ppid = os.getppid()
    master = f"{environ.get('MASTER_ADDR', '')}:{environ.get('MASTER_PORT', '')}"
    return f"parent:{master}:{socket.gethostname()}:{ppid}:{_parent_start(ppid)}"


def detect_rank(rank: int | None = None, world_size: int | None = None, job_id: str | None = None,
                environ: dict | None = None) -> Rank:
    """This process's ``Rank`` (see the module doc); the arguments override, and are checked."""
    for name, value in (("rank", rank), ("world_size", world_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"Experiment: {name} must be an int >= 0, got {value!r}")
    if job_id is not None and (not isinstance(job_id, str) or not 0 < len(job_id) <= 256 or "\x00" in job_id):
        raise ValueError(f"Experiment: job_id must be a non-empty str of at most 256 characters, got {job_id!r}")
    environ = os.environ if environ is None else environ
    torch = _torch_rank()
    rank = RANK.get(rank)
    world_size = WORLD_SIZE.get(world_size)
    if rank is None:
        rank = torch[0] if torch else _int_env(_RANK_VARIABLES, environ)
    if world_size is None:
        world_size = torch[1] if torch else _int_env(_WORLD_VARIABLES, environ)
    rank = rank or 0
    world_size = max(world_size or 1, rank + 1)
    job_id = JOB_ID.get(job_id)
    if job_id is None and world_size > 1:
        job_id = derived_job_id(environ)
    return Rank(rank, world_size, _int_env(_LOCAL_VARIABLES, environ), job_id)
