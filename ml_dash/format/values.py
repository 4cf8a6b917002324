"""How values that JSON cannot carry are written, in the JSONL files and in server answers alike.

JSON has no NaN/Infinity, and orjson would silently write ``null``. ml-dash writes them as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (the spellings JavaScript's ``Number()`` parses). Metric values are numbers only,
so reading them back is unambiguous. Integers are stored as SQL/JSON 64-bit integers; larger ones become floats.
"""
from __future__ import annotations

import math

NONFINITE_TO_TEXT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
TEXT_TO_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
INT64_MIN, INT64_END = -(2**63), 2**63  # signed 64-bit: what SQL integers hold
UINT64_END = 2**64  # orjson also writes unsigned 64-bit integers


def nonfinite_text(value: float) -> str:
    """The text spelling of a NaN or an infinity (``value`` must be one)."""
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode_metrics(metrics: dict) -> dict:
    """Reader side, in place: the non-finite spellings back into floats."""
    for k, v in metrics.items():
        if type(v) is str and v in TEXT_TO_NONFINITE:
            metrics[k] = TEXT_TO_NONFINITE[v]
    return metrics
