"""Tags and notes: what the client accepts is what the server stores (limits in ``format.limits``)."""
from __future__ import annotations

from typing import Any, Iterable

from ml_dash.format.limits import MAX_NOTES_CHARS, MAX_TAG_LENGTH, MAX_TAGS


def check_tags(tags: Any, what: str = "tags") -> list[str]:
    """``tags`` as a list of distinct tags in their first order; ``ValueError``/``TypeError`` naming ``what``."""
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise TypeError(f"{what} must be a list of strings, got {type(tags).__name__}")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            raise ValueError(f"{what}: each tag must be a non-empty string of at most {MAX_TAG_LENGTH} characters "
                             f"without NUL, got {tag!r:.80}")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValueError(f"{what}: at most {MAX_TAGS} tags per experiment, got {len(out)}")
    return out


def check_notes(notes: Any) -> str | None:
    """``notes`` (None clears them); ``ValueError``/``TypeError`` naming the argument."""
    if notes is None:
        return None
    if not isinstance(notes, str):
        raise TypeError(f"notes must be a str or None, got {type(notes).__name__}")
    if len(notes) > MAX_NOTES_CHARS or "\x00" in notes:
        raise ValueError(f"notes must be at most {MAX_NOTES_CHARS} characters, without NUL")
    return notes
