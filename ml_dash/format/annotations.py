"""Tags, notes and readmes: what the client accepts is what the server stores (limits in ``format.limits``)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ml_dash.format.limits import MAX_NOTES_CHARS, MAX_README_CHARS, MAX_TAG_LENGTH, MAX_TAGS


def check_tags(tags: Any, what: str = "tags", limit: int | None = MAX_TAGS) -> list[str]:
    """``tags`` as a list of distinct tags in their first order; ``ValueError``/``TypeError`` naming ``what``.

    Linear in the list's length, and refused as soon as it holds more than ``limit`` distinct tags (None: no limit,
    for tags to remove): a list of 100,000 tags costs one pass, never a comparison of each with every other."""
    if isinstance(tags, (str, bytes, Mapping)) or not isinstance(tags, Iterable):
        raise TypeError(f"{what} must be a list of strings, got {type(tags).__name__}")
    seen: dict[str, None] = {}  # ordered, with O(1) membership
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            raise ValueError(f"{what}: each tag must be a non-empty string of at most {MAX_TAG_LENGTH} characters "
                             f"without NUL, got {tag!r:.80}")
        seen[tag] = None
        if limit is not None and len(seen) > limit:
            size = f", got {len(tags)}" if isinstance(tags, (list, tuple)) else ""
            raise ValueError(f"{what}: at most {limit} tags per experiment{size}")
    return list(seen)


def check_readme(readme: Any, what: str = "readme") -> str | None:
    """``readme`` (None: none); ``ValueError``/``TypeError`` naming ``what``. The server renders it to HTML for each
    experiment page, so its size is bounded like the notes'."""
    if readme is None:
        return None
    if not isinstance(readme, str):
        raise TypeError(f"{what} must be a str or None, got {type(readme).__name__}")
    if len(readme) > MAX_README_CHARS:
        raise ValueError(f"{what} is {len(readme):,} characters; at most {MAX_README_CHARS:,} are accepted "
                         "(put a longer text in a file: exp.files)")
    return readme


def check_notes(notes: Any) -> str | None:
    """``notes`` (None clears them); ``ValueError``/``TypeError`` naming the argument."""
    if notes is None:
        return None
    if not isinstance(notes, str):
        raise TypeError(f"notes must be a str or None, got {type(notes).__name__}")
    if len(notes) > MAX_NOTES_CHARS or "\x00" in notes:
        raise ValueError(f"notes must be at most {MAX_NOTES_CHARS} characters, without NUL")
    return notes
