"""The one interface every tracker adapter of ``compare_trackers.py`` implements, and what the adapters share.

A run of one tracker goes through three processes (see ``harness.py``), and an adapter's methods follow them:

- the driver: ``available()`` (skip it, and say why) and ``steps(args)`` (how many steps it logs);
- the worker, a fresh process: ``prepare()`` (before the CPU sampler starts and outside the setup time: environment,
  a helper server), ``setup()`` (timed as "setup": import + init; returns the per-step ``log(i, d)`` and
  ``finish()``), then ``cleanup()`` after ``finish()`` and the CPU snapshot;
- the read-back, yet another fresh process after the worker exited: ``readback()`` counts the steps the store holds.

Adapters import their tracker's package inside these methods only: importing an adapter module costs nothing, and the
tracker's own import lands in the setup time, as it would in a training script.
"""
from __future__ import annotations

import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable

KEYS = ("loss", "acc", "lr")

Log = Callable[[int, dict], None]  # log(i, d): one step's logging call, timed on the caller thread
Finish = Callable[[], None]  # complete() / finish() / end_run() / close(), timed as "finish"


def complete_steps(step_keys: dict[int, set]) -> int:
    """Steps holding all three metrics, from ``{step: {metric names seen}}``."""
    return sum(1 for ks in step_keys.values() if all(k in ks for k in KEYS))


class Tracker(ABC):
    """One tracker as the benchmark drives it. One instance per process; an adapter may keep state between its
    worker-side calls (``prepare``/``setup``/``cleanup``) on ``self``. ``meta`` is the worker's dict that ends up in
    ``result.json`` and comes back to ``readback()``: put there what the read-back needs (a run id, a URL)."""

    name: str  # the key of --only / --worker / --readback
    label: str  # the row's label in the tables
    module: str | None  # what must be importable for it to run (None: nothing)
    dist: str | None  # the distribution whose version the report lists (None: the standard library)
    call: str  # what each step calls (the ratios table)
    baseline: bool = False  # a floor, not a tracker
    needs_torch: bool = False  # the worker imports torch before setup even in the float pass
    in_memory: bool = False  # the store is the worker's memory: the worker counts it, nothing to read back

    def available(self) -> tuple[bool, str]:
        """(runs here?, why not)."""
        if self.module is None:
            return True, ""
        try:
            if importlib.util.find_spec(self.module) is None:
                return False, f"`{self.module}` is not installed in {sys.executable}"
        except ModuleNotFoundError as e:
            return False, f"`{self.module}` is not importable ({e})"
        return True, ""

    def steps(self, args) -> int:
        """Steps of the timing pass."""
        return args.steps

    def prepare(self, out: str, meta: dict) -> None:
        """Worker, before the sampler and the setup timer."""

    @abstractmethod
    def setup(self, out: str, meta: dict) -> tuple[Log, Finish]:
        """Worker: start a run writing into ``out``; return ``(log(i, d), finish())``."""

    def cleanup(self, meta: dict) -> None:
        """Worker, after finish() and the CPU snapshot."""

    def stored_in_memory(self) -> int:
        """Worker, after cleanup(), for an ``in_memory`` store: the steps it holds with all three metrics."""
        raise NotImplementedError

    @abstractmethod
    def readback(self, out: str, meta: dict) -> dict:
        """Fresh process, after the worker exited: ``{"stored": steps with all 3 metrics or None, "how": ...}``."""
