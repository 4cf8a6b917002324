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

# What users paste as a server's URL besides its root: the dashboard's address (with a #/... route), the GraphQL
# endpoint or the REST prefix. Taken off with a warning; any other path is refused.
_SERVER_SUFFIXES = ("/graphql", "/api/v1", "/api")


def check_remote(remote: object, where: str) -> tuple[str | None, str | None]:
    """``(url, note)``: an ml-dash server's root URL from what the user gave (``None`` for none), and a sentence to
    warn with when it was changed. ``TypeError``/``ValueError`` naming ``remote`` when it cannot be a server."""
    from urllib.parse import urlsplit

    if remote is None or remote == "":
        return None, None
    if not isinstance(remote, str):
        raise TypeError(f"{where}: remote must be a str URL such as 'http://127.0.0.1:8000', got "
                        f"{type(remote).__name__} {remote!r}")
    parts = urlsplit(remote.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}: remote={remote!r} is not an http:// or https:// URL with a host (did you mean "
                         f"'http://{remote}'?)")
    try:
        parts.port  # noqa: B018  (raises for a port that is not a number or out of range)
    except ValueError as exc:
        raise ValueError(f"{where}: remote={remote!r}: {exc}") from None
    root = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    for suffix in _SERVER_SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    if path or parts.query:
        raise ValueError(f"{where}: remote={remote!r} has a path; ml-dash servers answer at their root: use "
                         f"remote={root!r}")
    if parts.path.rstrip("/") or parts.fragment:
        return root, f"{where}: remote={remote!r} is a dashboard or API address; using the server's root {root!r}"
    return root, None
