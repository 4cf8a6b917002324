"""``exp.tags`` and ``exp.notes``: kept in the meta file, and sent to the server by the uploader when they change."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ml_dash.format.annotations import check_notes, check_tags


class Tags:
    """The experiment's tags, in the order added, without duplicates: ``add``, ``remove``, iteration, ``in``."""

    def __init__(self, meta: dict, changed: Callable[[], None]) -> None:
        self._meta = meta
        self._changed = changed

    def _current(self) -> list[str]:
        return list(self._meta.get("tags") or [])

    def set(self, tags: Any) -> None:
        """Replace every tag."""
        self._store(check_tags(tags))

    def add(self, *tags: str) -> None:
        """Add tags (already present ones are kept where they are)."""
        self._store(check_tags([*self._current(), *check_tags(tags, "tags.add")]))

    def remove(self, *tags: str) -> None:
        """Remove tags; a tag the experiment does not have is ignored."""
        drop = set(check_tags(tags, "tags.remove", limit=None))  # removing many is harmless
        self._store([t for t in self._current() if t not in drop])

    def _store(self, tags: list[str]) -> None:
        if tags != self._current() or "tags" not in self._meta:
            self._meta["tags"] = tags
            self._changed()

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __contains__(self, tag: object) -> bool:
        return tag in self._current()

    def __len__(self) -> int:
        return len(self._current())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tags):
            return self._current() == other._current()
        return isinstance(other, (list, tuple)) and self._current() == list(other)

    def __repr__(self) -> str:
        return f"Tags({self._current()!r})"


def set_notes(meta: dict, notes: Any, changed: Callable[[], None]) -> None:
    notes = check_notes(notes)
    if meta.get("notes") != notes or "notes" not in meta:
        meta["notes"] = notes
        changed()
