"""Configuration precedence, in one place: argument → ML_DASH_* → ML_LOGGER_* → default."""
from __future__ import annotations

import os
from typing import Callable, TypeVar

T = TypeVar("T")


def setting(name: str, argument: T | None, default: T, convert: Callable[[str], T] = str) -> T:  # type: ignore[assignment]
    """Resolve one setting: an explicit argument wins, then ``ML_DASH_<NAME>``, then ``ML_LOGGER_<NAME>``."""
    if argument is not None:
        return argument
    for var in (f"ML_DASH_{name}", f"ML_LOGGER_{name}"):
        raw = os.environ.get(var)
        if raw not in (None, ""):
            try:
                return convert(raw)
            except ValueError as exc:
                raise ValueError(f"environment variable {var}={raw!r} is invalid: {exc}") from None
    return default


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def as_bool(raw: str) -> bool:
    """``convert`` for an on/off setting: 1/0, true/false, yes/no, on/off (any case)."""
    text = raw.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("must be one of 1, 0, true, false, yes, no, on, off")
