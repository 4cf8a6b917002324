"""A metric series as the series layer and the storage backends exchange it, and how a stored value reads back."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# How a stored metric value reads back: SQL has one NULL but ml-dash distinguishes null from NaN, and bools from 0/1.
VALUE_KIND_NUMBER = 0
VALUE_KIND_BOOL = 1
VALUE_KIND_NULL = 2
VALUE_KIND_NAN = 3


@dataclass(frozen=True)
class Series:
    """One metric series in step order. Values are float64 with NaN for both null and NaN; ``kinds`` tells them apart."""

    steps: np.ndarray  # float64: NaN where the point was logged without a step
    values: np.ndarray  # float64
    kinds: np.ndarray  # int8, see VALUE_KIND_*


@dataclass(frozen=True)
class RunView:
    """Which points of a series a read takes, by the run that logged them (docs/branches.md): a chunk of run ``r``
    shows its points at steps ``< cutoffs[r]`` (``format.branches.cutoffs``; a run not listed, or NULL, has the
    cutoff ``default``). ``superseded``: the other points instead. Built by storage from the runs table; consumed by
    the series read, cache and downsampling (``series.cache``)."""

    cutoffs: tuple[tuple[int | None, float], ...] = ()
    default: float = float("inf")
    superseded: bool = False

    def cutoff(self, run_pk: int | None) -> float:
        for pk, cut in self.cutoffs:
            if pk == run_pk:
                return cut
        return self.default

    @property
    def plain(self) -> bool:
        """Every point is shown: the read is today's, with no clipping."""
        return not self.superseded and self.default == float("inf") and all(c == float("inf") for _, c in self.cutoffs)

    def mask(self, run_pk: int | None, steps: np.ndarray) -> np.ndarray | None:
        """Which of a chunk's points (``steps`` in stored order) the view shows; None: all of them."""
        cut = self.cutoff(run_pk)
        if cut == float("inf") and not self.superseded:
            return None
        with np.errstate(invalid="ignore"):
            kept = steps < cut  # NaN (no step) compares false: such a point is never superseded
        kept |= np.isnan(steps)
        return ~kept if self.superseded else kept
