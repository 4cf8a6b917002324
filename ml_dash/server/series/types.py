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
