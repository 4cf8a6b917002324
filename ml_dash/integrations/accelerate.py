"""``MLDashTracker``: an ``accelerate`` tracker, so that ``Accelerator(log_with=MLDashTracker(...))`` logs to ml-dash.

    accelerator = Accelerator(log_with=MLDashTracker(namespace="alice", workspace="nlp", prefix="run-1"))
    accelerator.init_trackers("project", config={"lr": 1e-3})
    accelerator.log({"loss": loss}, step=step)
    accelerator.end_training()
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

from accelerate.tracking import GeneralTracker, on_main_process

from ml_dash import Experiment, detect_rank
from ml_dash.integrations._common import job_kwargs, numeric, set_params, unique_prefix


class MLDashTracker(GeneralTracker):
    """An ml-dash ``Experiment`` behind accelerate's tracker interface.

    Every process that calls ``start()`` opens its own run of the job (``rank``, ``world_size``, ``job_id`` from
    the launcher; prefix and job id from the main process, through the process group's store), so its system metrics
    and console are recorded (docs/distributed.md). accelerate calls ``init_trackers`` and ``log`` on the main process
    only: on the other processes call ``tracker.start()`` after ``init_trackers`` (``end_training`` ends every
    process's run). Parameters are the main process's; metrics too, unless ``log_all_ranks=True`` (then
    ``tracker.log`` on any process logs that rank's metrics).

    The arguments are ``Experiment``'s; the ``Experiment`` is built, and its run started, in ``start()`` (called by
    ``init_trackers``). ``init_trackers(project_name)`` names the workspace unless ``workspace=`` was given
    (accelerate hands a tracker instance no project name: it is read from the ``init_trackers`` call); ``prefix``
    defaults to ``run/<YYYYmmdd-HHMMSS>-<4 hex>``, an experiment per run. ``store_init_configuration`` sets the
    parameters (nested dicts kept), ``log`` logs the numbers (tensors as they are), ``finish`` (``end_training``)
    completes the run.
    """

    name = "ml_dash"
    requires_logging_directory = False
    main_process_only = False  # each method decides (every rank has a run; parameters and metrics are rank 0's)

    def __init__(self, namespace: Optional[str] = None, workspace: Optional[str] = None,
                 prefix: Optional[str] = None, directory: Optional[str] = None, remote: Optional[str] = None,
                 local_root: Optional[str] = None, readme: Optional[str] = None, log_all_ranks: bool = False) -> None:
        super().__init__()
        if not isinstance(log_all_ranks, bool):
            raise TypeError(f"MLDashTracker: log_all_ranks must be True or False, got {log_all_ranks!r}")
        self._log_all_ranks = log_all_ranks
        self._kwargs = dict(namespace=namespace, workspace=workspace, prefix=prefix, directory=directory,
                            remote=remote, local_root=local_root, readme=readme)
        self._experiment: Optional[Experiment] = None
        self._running = False
        self._params_logged = False
        self._warned: set = set()

    @property
    def tracker(self) -> Optional[Experiment]:
        """The ``Experiment`` (``None`` before ``start()``)."""
        return self._experiment

    def _exp(self) -> Experiment:
        if self._experiment is None:
            kwargs = dict(self._kwargs)
            if kwargs["workspace"] is None:
                kwargs["workspace"] = _project_name() or None
            self._experiment = Experiment(**job_kwargs(kwargs, lambda: unique_prefix("run")))
        if not self._running or self._experiment.status != "running":
            # Accelerator.load_state() comes after init_trackers(): the run resumes where it first logs (the
            # restored step), superseding the earlier run's points from there (docs/branches.md).
            self._experiment.run()
            self._running = True
        return self._experiment

    @on_main_process
    def start(self) -> None:
        self._exp()

    def _rank(self) -> int:
        return self._experiment.rank_info.rank if self._experiment is not None else detect_rank().rank

    @on_main_process
    def store_init_configuration(self, values: dict) -> None:
        if self._rank() > 0:
            return  # the experiment's parameters are the main process's
        set_params(self._exp(), dict(values or {}), first=not self._params_logged)
        self._params_logged = True

    @on_main_process
    def log(self, values: dict, step: Optional[int] = None, **kwargs: Any) -> None:
        if self._rank() > 0 and not self._log_all_ranks:
            return
        metrics = dict(values)
        if "step" in metrics:  # would clash with metrics.log's step argument
            value = metrics.pop("step")
            if step is None and isinstance(value, int):
                step = value
        exp = self._exp()
        try:
            exp.metrics.log(step=step, **metrics)
        except TypeError:  # a string or a list among the values: log the numbers, warn once per key
            exp.metrics.log(step=step, **numeric(metrics, self._warned, "MLDashTracker.log"))

    @on_main_process
    def finish(self) -> None:
        if self._experiment is not None and self._running:
            self._running = False
            self._experiment.complete()


def _project_name() -> Optional[str]:
    """The ``project_name`` of the ``Accelerator.init_trackers`` call on the stack, if any."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "init_trackers" and isinstance(frame.f_locals.get("project_name"), str):
            return frame.f_locals["project_name"]
        frame = frame.f_back
    return None
