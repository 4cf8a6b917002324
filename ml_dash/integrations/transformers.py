"""``MLDashCallback``: a Hugging Face ``transformers.TrainerCallback`` writing to an ml-dash ``Experiment``.

    from ml_dash.integrations.transformers import MLDashCallback
    trainer = Trainer(..., args=TrainingArguments(..., report_to=[]), callbacks=[MLDashCallback(prefix="bert-1")])
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

from transformers import TrainerCallback

from ml_dash import Experiment, detect_rank
from ml_dash.integrations._common import copy_tree_into_files, job_kwargs, numeric, set_params, unique_prefix


# Written into each checkpoint directory: the prefix of the experiment that saved it, so that
# ``trainer.train(resume_from_checkpoint=...)`` continues that experiment when no ``prefix=`` was given.
RUN_FILE = "ml-dash-run.json"


def _default_prefix(args: Any, output_dir: str) -> str:
    run_name = getattr(args, "run_name", None)
    own = run_name and run_name != output_dir  # older transformers default run_name to output_dir
    return unique_prefix(run_name if own else os.path.basename(os.path.normpath(output_dir)))


def _checkpoint_prefix(output_dir: str, state: Any) -> Optional[str]:
    """The prefix recorded in the checkpoint the Trainer resumed from (its state is loaded before
    ``on_train_begin``: ``global_step`` names it), or None for a fresh run."""
    step = getattr(state, "global_step", 0) if state is not None else 0
    if not isinstance(step, int) or step <= 0:
        return None
    try:
        with open(os.path.join(output_dir, f"checkpoint-{step}", RUN_FILE), encoding="utf-8") as f:
            prefix = json.load(f).get("prefix")
    except (OSError, ValueError, AttributeError):
        return None
    return prefix if isinstance(prefix, str) and prefix else None


def rewrite_logs(logs: dict) -> dict:
    """HF's own W&B/MLflow naming: ``eval_loss`` → ``eval/loss``, ``test_x`` → ``test/x``, anything else ``train/…``."""
    out = {}
    for k, v in logs.items():
        if k.startswith("eval_"):
            out["eval/" + k[5:]] = v
        elif k.startswith("test_"):
            out["test/" + k[5:]] = v
        else:
            out["train/" + k] = v
    return out


class MLDashCallback(TrainerCallback):
    """Logs a ``Trainer``'s run to an ml-dash ``Experiment``.

    In a distributed job every process opens its own run of the job in world process zero's experiment (its prefix
    and job id shared through the process group's store), so each rank's system metrics and console are recorded
    (docs/distributed.md); parameters, metrics and checkpoints come from world process zero only, metrics from every
    rank with ``log_all_ranks=True``.

    Pass ``Experiment``'s arguments (``namespace``, ``workspace``, ``prefix`` …; ``prefix`` defaults to
    ``<run_name>/<YYYYmmdd-HHMMSS>-<4 hex>``, the ``run_name`` of the ``TrainingArguments`` or its ``output_dir``'s
    name, so that each run of a script is an experiment of its own), or an ``experiment`` whose run you start and
    end yourself (its parameters are then extended, not replaced). At ``on_train_begin`` the run starts and the
    parameters are set: the model config (``model.config.to_dict()``) under ``model`` and
    ``TrainingArguments.to_dict()`` under ``args``. ``on_log`` logs the numbers with HF's ``train/``/``eval/``
    prefixes at ``state.global_step``; ``on_train_end`` completes the run. With ``log_checkpoints=True`` each
    checkpoint directory ``on_save`` writes is hard-linked (copied across file systems) into
    ``files/checkpoints/checkpoint-<step>/``.
    """

    def __init__(self, namespace: Optional[str] = None, workspace: Optional[str] = None,
                 prefix: Optional[str] = None, directory: Optional[str] = None, remote: Optional[str] = None,
                 local_root: Optional[str] = None, readme: Optional[str] = None, log_checkpoints: bool = False,
                 experiment: Optional[Experiment] = None, log_all_ranks: bool = False) -> None:
        if not isinstance(log_all_ranks, bool):
            raise TypeError(f"MLDashCallback: log_all_ranks must be True or False, got {log_all_ranks!r}")
        self._log_all_ranks = log_all_ranks
        self._kwargs = dict(namespace=namespace, workspace=workspace, prefix=prefix, directory=directory,
                            remote=remote, local_root=local_root, readme=readme)
        self._log_checkpoints = log_checkpoints
        self._prefix: Optional[str] = prefix
        self._experiment = experiment
        self._owned = experiment is None  # a given experiment's run is its owner's to start and end
        self._running = False
        self._warned: set = set()

    @property
    def experiment(self) -> Optional[Experiment]:
        """The ``Experiment`` (``None`` until training begins, and on a process other than world process zero that
        is not a rank of a job ml-dash recognises)."""
        return self._experiment

    def _start(self, args: Any, model: Any = None, state: Any = None) -> Experiment:
        if self._experiment is None:
            output_dir = getattr(args, "output_dir", None) or "trainer"
            # One experiment per run: <run_name or output_dir name>/<time>-<random>, unless this run resumes a
            # checkpoint an earlier run saved: then it continues that experiment. A rank > 0 takes rank 0's.
            kwargs = job_kwargs(self._kwargs, lambda: _checkpoint_prefix(output_dir, state)
                                or _default_prefix(args, output_dir))
            self._prefix = kwargs["prefix"]
            self._experiment = Experiment(**kwargs)
        exp = self._experiment
        if not self._running or (self._owned and exp.status != "running"):
            if self._owned:
                # resume_from_checkpoint=: the Trainer has loaded the checkpoint's state before on_train_begin. Its
                # global step G counts completed steps, logged as step G before the save, so the run resumes at
                # G + 1 and the earlier run's points from there on are superseded (docs/branches.md), even those
                # before this run's first log; a fresh run supersedes from its first logged step.
                step = getattr(state, "global_step", 0) if state is not None else 0
                exp.run(resume_step=step + 1) if isinstance(step, int) and step > 0 else exp.run()
            self._running = True
            if state is not None and not state.is_world_process_zero:
                return exp  # the parameters are the experiment's: world process zero's
            params = {"args": args.to_dict()} if hasattr(args, "to_dict") else {}
            config = getattr(model, "config", None)
            if config is not None:
                params["model"] = config if isinstance(config, dict) else config.to_dict()
            if params:
                set_params(exp, params, first=self._owned)
        return exp

    def _here(self, state: Any) -> bool:
        """This process has a run: world process zero, or another rank of a job ml-dash recognises (its own run of
        the job: system metrics, console) when the callback owns the experiment."""
        return state.is_world_process_zero or (self._owned and detect_rank().distributed)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self._here(state):
            self._start(args, model, state)

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[dict] = None, model: Any = None,
               **kwargs: Any) -> None:
        if not logs or not (state.is_world_process_zero or (self._log_all_ranks and self._here(state))):
            return
        exp = self._start(args, model, state) if not self._running else self._experiment
        metrics = numeric(rewrite_logs(logs), self._warned, "MLDashCallback.on_log")
        if metrics:
            exp.metrics.log(step=state.global_step, **metrics)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not (self._running and state.is_world_process_zero):
            return
        name = f"checkpoint-{state.global_step}"
        source = os.path.join(args.output_dir, name)
        if os.path.isdir(source):  # which experiment this checkpoint belongs to, for a run that resumes from it
            with open(os.path.join(source, RUN_FILE), "w", encoding="utf-8") as f:
                json.dump({"prefix": self._prefix}, f)
        if self._log_checkpoints and os.path.isdir(source):
            copy_tree_into_files(self._experiment, source, f"checkpoints/{name}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._running:  # every rank ends its own run
            self._running = False
            if self._owned:
                self._experiment.complete()
