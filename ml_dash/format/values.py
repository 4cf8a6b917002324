"""How values that JSON cannot carry are written, in the JSONL files and in server answers alike.

JSON has no NaN/Infinity, and orjson would silently write ``null``. ml-dash writes them as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (the spellings JavaScript's ``Number()`` parses). Metric values are numbers only,
so reading them back is unambiguous. Integers are stored as SQL/JSON 64-bit integers; larger ones become floats.
"""
from __future__ import annotations

import math
from typing import Any

TEXT_TO_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
INT64_MIN, INT64_END = -(2**63), 2**63  # signed 64-bit: what SQL integers hold
UINT64_END = 2**64  # orjson also writes unsigned 64-bit integers


def nonfinite_text(value: float) -> str:
    """The text spelling of a NaN or an infinity (``value`` must be one)."""
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def json_safe(value: Any) -> Any:
    """Any value as something orjson encodes, never raising: the writer's last resort for a record orjson refused.

    Non-finite floats take their text spellings, ints outside what orjson writes (signed 64-bit up to unsigned
    64-bit) become floats, tuples become lists, keys become ``str`` and any other object its ``str``. The server
    validates what it receives on its own terms (``ml_dash.server.ingest``: it refuses rather than converts)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value < UINT64_END else float(value)
    if isinstance(value, float):
        return value if value - value == 0.0 else nonfinite_text(value)
    return str(value)


def decode_metrics(metrics: dict) -> dict:
    """Reader side, in place: the non-finite spellings back into floats."""
    for k, v in metrics.items():
        if type(v) is str and v in TEXT_TO_NONFINITE:
            metrics[k] = TEXT_TO_NONFINITE[v]
    return metrics
