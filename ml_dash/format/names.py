"""Validation of user-supplied names so that no path built from them escapes its root."""
from __future__ import annotations

import os
import re

_FORBIDDEN_CHARS = ("\x00", "\\")


def check_segments(arg: str, value: object, *, allow_nested: bool = True) -> str:
    """Return ``value`` normalised to ``a/b/c`` form, or raise ``ValueError`` naming ``arg``.

    Rejects empty names, absolute paths, ``..``/``.`` segments, NUL bytes and backslashes: every
    segment must stay inside the directory it is joined to.
    """
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, got {type(value).__name__}")
    for bad in _FORBIDDEN_CHARS:
        if bad in value:
            raise ValueError(f"{arg}={value!r} contains a forbidden character {bad!r}")
    if value.startswith("/") or os.path.isabs(value):
        raise ValueError(f"{arg}={value!r} must be a relative name, not an absolute path")
    segments = [s for s in value.split("/") if s != ""]
    if not segments:
        raise ValueError(f"{arg} must not be empty")
    if not allow_nested and len(segments) > 1:
        raise ValueError(f"{arg}={value!r} must not contain '/'")
    for seg in segments:
        if seg in (".", ".."):
            raise ValueError(f"{arg}={value!r} must not contain '.' or '..' segments")
    return "/".join(segments)


def safe_join(root: str, relative: str, arg: str) -> str:
    """Join a validated relative name to ``root``; the result is guaranteed to lie under ``root``."""
    rel = check_segments(arg, relative)
    path = os.path.join(root, *rel.split("/"))
    root_abs = os.path.abspath(root)
    if os.path.commonpath([root_abs, os.path.abspath(path)]) != root_abs:  # belt and braces
        raise ValueError(f"{arg}={relative!r} escapes {root!r}")
    return path


def natural_key(text: str) -> tuple:
    """Sort key that orders the digit runs of ``text`` by value: ``epoch_5`` before ``epoch_10`` (the dashboard's
    file list uses the same order, ``localeCompare`` with ``numeric``)."""
    return tuple((0, int(part), part) if part.isdigit() else (1, part.casefold(), part)
                 for part in re.split(r"(\d+)", text))
