"""Tracker adapters for ``benchmarks/compare_trackers.py``: one module per tracker, all behind ``base.Tracker``.

Adding a tracker: a module with a ``Tracker`` subclass, and one line in ``_ALL`` (its place there is its place in
the default order and in the tables).
"""
from __future__ import annotations

from .aim_run import AimRun
from .base import KEYS, Tracker, complete_steps
from .deque_baseline import DequeBaseline
from .mldash_local import MlDashLocal
from .mldash_remote import MlDashRemote
from .mlflow_async import MlflowAsync
from .mlflow_sqlite import MlflowSqlite
from .orjson_baseline import OrjsonBaseline
from .tensorboard_writer import TensorBoardWriter
from .wandb_offline import WandbOffline

_ALL = (MlDashLocal, MlDashRemote, WandbOffline, MlflowSqlite, MlflowAsync, TensorBoardWriter, AimRun,
        DequeBaseline, OrjsonBaseline)

TRACKERS: dict[str, Tracker] = {t.name: t for t in (cls() for cls in _ALL)}
ORDER = list(TRACKERS)

__all__ = ["KEYS", "ORDER", "TRACKERS", "Tracker", "complete_steps"]
