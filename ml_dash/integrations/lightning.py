"""``MLDashLogger``: a PyTorch Lightning logger writing to an ml-dash ``Experiment`` (metrics from rank zero; every
rank of a DDP job its system metrics and console, docs/distributed.md).

    from ml_dash.integrations.lightning import MLDashLogger
    trainer = Trainer(logger=MLDashLogger(namespace="alice", workspace="vision", prefix="resnet-001"))
"""
from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from ml_dash import Experiment, detect_rank
from ml_dash.integrations._common import copy_into_files, job_kwargs, next_version, numeric, set_params
from ml_dash.settings import LOCAL_ROOT, NAMESPACE, WORKSPACE

_ENDED = {"success": "completed", "finished": "completed", "failed": "failed"}


class _NoOpExperiment:
    """What ``logger.experiment`` is on ranks > 0: every attribute, call and item is itself, so
    ``logger.experiment.metrics.log(...)`` or ``logger.experiment.params.set(...)`` do nothing there."""

    def __getattr__(self, name: str) -> "_NoOpExperiment":
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> "_NoOpExperiment":
        return self

    def __getitem__(self, key: Any) -> "_NoOpExperiment":
        return self

    def __bool__(self) -> bool:
        return False


class MLDashLogger(Logger):
    """Logs Lightning's metrics and hyperparameters to an ml-dash ``Experiment``.

    In a distributed job (DDP: a process group, or a launcher ml-dash recognises) every rank opens its own run of the
    job in rank 0's experiment, so each rank's system metrics and console reach the server (docs/distributed.md);
    metrics and hyperparameters are logged from rank zero only, unless ``log_all_ranks=True``: then every rank logs
    its metrics too (rank *r*'s series are read with ``rank=r``). ``logger.experiment`` on a rank > 0 is a stand-in
    that does nothing, unless ``log_all_ranks=True``.

    The arguments are ``Experiment``'s. The run starts when the logger is first used (Lightning touches
    ``logger.experiment`` during setup) and ends in ``finalize``: ``completed`` for ``"success"``/``"finished"``,
    ``failed`` (with the exception being handled, if any) for ``"failed"``. Used again after that (``trainer.test``
    after ``trainer.fit``), it starts a new run in the same directory.

    ``prefix`` defaults to ``version_N`` (one more than the highest in the workspace's local directory), as
    Lightning's own loggers number runs. Checkpoints are hard-linked into ``files/`` (copied across file systems),
    so each is on disk once. ``log_checkpoints``: ``False`` (default) copies nothing; ``True`` copies the
    checkpoints ``ModelCheckpoint`` keeps into ``files/checkpoints/`` at the end (each as it is saved when
    ``save_top_k=-1``); ``"all"`` copies each checkpoint as it is saved.
    """

    def __init__(self, namespace: Optional[str] = None, workspace: Optional[str] = None,
                 prefix: Optional[str] = None, directory: Optional[str] = None, remote: Optional[str] = None,
                 local_root: Optional[str] = None, readme: Optional[str] = None,
                 log_checkpoints: Union[bool, str] = False, log_all_ranks: bool = False) -> None:
        super().__init__()
        if log_checkpoints not in (True, False, "all"):
            raise ValueError(f"MLDashLogger: log_checkpoints must be True, False or 'all', got {log_checkpoints!r}")
        if not isinstance(log_all_ranks, bool):
            raise TypeError(f"MLDashLogger: log_all_ranks must be True or False, got {log_all_ranks!r}")
        self._log_all_ranks = log_all_ranks
        self._kwargs = dict(namespace=namespace, workspace=workspace, prefix=prefix, directory=directory,
                            remote=remote, local_root=local_root, readme=readme)
        self._log_checkpoints = log_checkpoints
        self._experiment: Optional[Experiment] = None
        self._running = False
        self._ran = False  # this logger has started a run before
        self._params_logged = False
        self._warned: set = set()
        self._checkpoint_callback: Any = None
        self._copied: dict[str, float] = {}

    def __getstate__(self) -> dict:
        # An Experiment holds locks and open files: a pickled logger (ddp_spawn) builds its own where it runs.
        state = self.__dict__.copy()
        state["_experiment"] = None
        state["_running"] = False
        state["_checkpoint_callback"] = None
        return state

    # -- the experiment ---------------------------------------------------------------------------------------
    def _exp(self) -> Experiment:
        if self._experiment is None:
            kwargs = dict(self._kwargs)
            namespace, workspace = NAMESPACE.get(kwargs["namespace"]), WORKSPACE.get(kwargs["workspace"])

            def version() -> Optional[str]:  # version_N, as Lightning's loggers number runs
                if not (namespace and workspace):
                    return None
                parent = os.path.join(os.path.abspath(LOCAL_ROOT.get(kwargs["local_root"])), namespace, workspace,
                                      *([kwargs["directory"]] if kwargs["directory"] else []))
                return next_version(parent)

            kwargs = job_kwargs(kwargs, version)  # a rank > 0 takes rank 0's prefix and job id
            self._kwargs["prefix"] = kwargs["prefix"]
            self._experiment = Experiment(**kwargs)
        return self._experiment

    def _rank_run(self) -> Optional[Experiment]:
        """This rank's ``Experiment``, its run started; on a rank > 0 only when ml-dash sees the job (a process group
        or a launcher's variables): without one it would be a second plain run in rank 0's directory."""
        if rank_zero_only.rank > 0 and self._experiment is None and not detect_rank().distributed:
            return None
        exp = self._exp()
        if not self._running or exp.status != "running":
            # The first run resumes where it first logs: a fit(ckpt_path=...) logs from the checkpoint's global step
            # on (Lightning does not show a logger the checkpoint), so its points replace the earlier run's from
            # there (docs/branches.md). A later run of this logger (validate/test after fit) only adds its points.
            exp.run(append=True) if self._ran else exp.run()
            self._running = self._ran = True
        return exp

    def _logs_here(self) -> bool:
        """Whether this rank logs metrics and hyperparameters (rank zero, or every rank with ``log_all_ranks``); a
        rank that does not still opens its run (system metrics, console)."""
        if rank_zero_only.rank == 0 or self._log_all_ranks:
            return True
        self._rank_run()
        return False

    @property
    def experiment(self) -> Union[Experiment, _NoOpExperiment]:
        """The ``Experiment`` (its run started) on rank zero, and on every rank with ``log_all_ranks=True``; on other
        ranks a stand-in that does nothing (their own runs record system metrics and console)."""
        if not self._logs_here():
            return _NoOpExperiment()
        exp = self._rank_run()
        return _NoOpExperiment() if exp is None else exp

    @property
    def _own(self) -> bool:
        """This rank has built its ``Experiment`` (its identity properties come from it)."""
        return rank_zero_only.rank == 0 or self._experiment is not None

    # -- identity: log_dir == save_dir/name/version, as for Lightning's CSV logger -----------------------------
    @property
    def name(self) -> str:
        """``namespace/workspace`` (``/directory`` when given)."""
        if self._own:
            exp = self._exp()
            parts = [exp.namespace, exp.workspace] + ([exp.directory] if exp.directory else [])
        else:
            k = self._kwargs
            # Ranks > 0 never build an Experiment: resolve its settings the way it would.
            parts = [NAMESPACE.get(k["namespace"]) or "", WORKSPACE.get(k["workspace"]) or ""]
            parts += [k["directory"]] if k["directory"] else []
        return "/".join(parts)

    @property
    def version(self) -> str:
        """The experiment's ``prefix``."""
        return self._exp().prefix if self._own else str(self._kwargs["prefix"])

    @property
    def save_dir(self) -> str:
        """The local root (``local_root``, ``ML_DASH_LOCAL_ROOT`` … or ``.ml-logger``), absolute."""
        if self._own:
            exp = self._exp()
            return exp.local_path[: -len(os.path.join(self.name, self.version))].rstrip(os.sep) or os.sep
        return os.path.abspath(LOCAL_ROOT.get(self._kwargs["local_root"]))

    @property
    def log_dir(self) -> str:
        """The experiment's directory (``ModelCheckpoint`` then saves into ``<log_dir>/checkpoints``)."""
        if self._own:
            return self._exp().local_path
        return os.path.join(self.save_dir, self.name, self.version)

    @property
    def root_dir(self) -> str:
        return os.path.join(self.save_dir, self.name)

    # -- logging ------------------------------------------------------------------------------------------------
    def log_hyperparams(self, params: Union[dict, Namespace], *args: Any, **kwargs: Any) -> None:
        """Hyperparameters (a dict or ``argparse.Namespace``, nested dicts kept) into ``parameters.jsonl``: the first
        call replaces the parameters, later calls merge into them. Rank zero's only: they are the experiment's."""
        if rank_zero_only.rank > 0:
            self._rank_run()
            return
        if isinstance(params, Namespace):
            params = vars(params)
        params = dict(params or {})
        if not params:
            return
        set_params(self.experiment, params, first=not self._params_logged)
        self._params_logged = True

    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        """One row at ``step``; tensors go to ``exp.metrics.log`` as they are (read on ml-dash's writer thread).
        Rank zero's only, unless ``log_all_ranks``."""
        if not self._logs_here():
            return
        metrics = dict(metrics)
        if "step" in metrics:  # would clash with log()'s step argument
            value = metrics.pop("step")
            if step is None and isinstance(value, int):
                step = value
        exp = self._rank_run()
        if exp is None:
            return
        try:
            exp.metrics.log(step=step, **metrics)
        except TypeError:  # a value metrics.log refuses (a string, a list): log the rest, warn once per key
            exp.metrics.log(step=step, **numeric(metrics, self._warned, "MLDashLogger.log_metrics"))

    def save(self) -> None:
        """Lightning calls this on every rank when training starts (and after logging steps): each rank opens its run
        here, so a rank's system metrics and console are recorded from the start, and rank 0 has published the job's
        experiment before a rank > 0 waits for it (in a DDP job, before the first step needs every rank). Never
        reopens a run ``finalize`` ended."""
        if not self._ran and (rank_zero_only.rank > 0 or detect_rank().distributed):
            self._rank_run()

    # -- checkpoints --------------------------------------------------------------------------------------------
    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_checkpoints:
            return
        if self._log_checkpoints == "all" or getattr(checkpoint_callback, "save_top_k", None) == -1:
            self._copy_checkpoints(checkpoint_callback)
        else:
            self._checkpoint_callback = checkpoint_callback  # the ones kept are copied in finalize

    def _copy_checkpoints(self, checkpoint_callback: Any) -> None:
        from lightning.pytorch.loggers.utilities import _scan_checkpoints

        exp = self.experiment
        for mtime, path, _score, _tag in _scan_checkpoints(checkpoint_callback, self._copied):
            copy_into_files(exp, path, "checkpoints", Path(path).name)
            self._copied[path] = mtime

    # -- the end ------------------------------------------------------------------------------------------------
    def finalize(self, status: str) -> None:
        """End this rank's run: ``completed`` for ``"success"``/``"finished"``, ``failed`` for ``"failed"``."""
        if self._experiment is None or not self._running:
            return
        exp = self._experiment
        if self._checkpoint_callback is not None:
            try:
                self._copy_checkpoints(self._checkpoint_callback)
            except ReferenceError:  # the callback (a weak proxy) is gone
                pass
            self._checkpoint_callback = None
        self._running = False
        if _ENDED.get(status, "completed") == "failed":
            error = sys.exc_info()[1]  # Lightning calls finalize("failed") while handling the exception
            exp.fail(f"{type(error).__name__}: {error}" if error is not None else "")
        else:
            exp.complete()
