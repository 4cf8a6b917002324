"""``exp.media``: log images, histograms, audio, video and tables by key and step (docs/media.md).

``exp.media.log(step=i, samples=[Image(x, caption="a")], weights=Histogram(w))`` queues one event holding the
captured objects; ``exp.media("val")`` logs under ``val.<key>`` as ``exp.metrics("val")`` does. The queue bounds
the captured bytes (``ML_DASH_MEDIA_QUEUE_BYTES``, ``Pipeline.append_sized``).
"""
from __future__ import annotations

from time import time as _time
from typing import Any, Iterator

from ml_dash.client.events import media_event
from ml_dash.client.media.types import MEDIA_TYPES
from ml_dash.client.pipeline.process import PIPELINE
from ml_dash.client.values import check_step
from ml_dash.format.layout import stream_path
from ml_dash.format.limits import MAX_MEDIA_ITEMS_PER_EVENT, MAX_NAME_LENGTH

_TYPES = frozenset(MEDIA_TYPES)


class MediaManager:
    """Logs media; ``exp.media("val")`` logs ``val.<key>``."""

    def __init__(self, exp: Any, store_key: int, directory: str, namespace: str | None = None) -> None:
        self._exp = exp
        self._key = store_key
        self._directory = directory
        self._ns = namespace
        self._children: dict[str, MediaManager] = {}

    def __call__(self, namespace: str) -> "MediaManager":
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"media(namespace): a non-empty str, got {namespace!r}")
        child = self._children.get(namespace)
        if child is None:
            child = self._children[namespace] = MediaManager(self._exp, self._key, self._directory,
                                                             (self._ns or "") + namespace + ".")
        return child

    def log(self, step: int | None = None, **items: Any) -> bool:
        """Queue media by key: each value is a media object or a list of them. ``False`` if the queue had no room
        for its bytes and ``ML_DASH_ON_FULL=drop`` dropped it (counted in ``dropped``)."""
        if not self._exp.in_run:
            self._exp.ensure_run("media.log")
        if step is not None:
            step = check_step(step, "media.log")
        if not items:
            raise ValueError("media.log: give at least one item, e.g. media.log(step, samples=Image(x))")
        ns, queued, nbytes = self._ns or "", [], 0
        for key, value in items.items():
            name = ns + key
            if len(name) > MAX_NAME_LENGTH:
                raise ValueError(f"media.log: the key {name[:60]!r}... is {len(name)} characters long; keys are "
                                 f"limited to {MAX_NAME_LENGTH} (namespace included)")
            if type(value) in _TYPES:
                queued.append((name, 0, value))
                nbytes += value.nbytes
                continue
            if not isinstance(value, (list, tuple)) or not value:
                raise TypeError(f"media.log: {key}= must be an Image, Histogram, Audio, Video or Table, or a "
                                f"non-empty list of them; got {type(value).__name__}")
            for i, item in enumerate(value):
                if type(item) not in _TYPES:
                    raise TypeError(f"media.log: {key}[{i}] must be an Image, Histogram, Audio, Video or Table; got "
                                    f"{type(item).__name__}")
                queued.append((name, i, item))
                nbytes += item.nbytes
        if len(queued) > MAX_MEDIA_ITEMS_PER_EVENT:
            raise ValueError(f"media.log: {len(queued)} items in one call; the limit is {MAX_MEDIA_ITEMS_PER_EVENT}")
        return PIPELINE.append_sized(media_event(self._key, _time(), step, queued, nbytes), nbytes)

    @property
    def dropped(self) -> int:
        """Media events of this process dropped for want of queue bytes (``ML_DASH_ON_FULL=drop``)."""
        return PIPELINE.sized_dropped

    def read(self, key: str | None = None) -> list[dict]:
        """The index entries written so far (``{step, key, kind, format, shape, caption, ...}``), oldest first;
        ``key`` picks one key. The bytes: ``ml_dash.Api(local_root=...)``'s ``record.media(key)``."""
        from ml_dash.format.jsonl import read_jsonl

        self._exp.flush()
        entries = read_jsonl(stream_path(self._directory, "media"))
        return [e for e in entries if key is None or e.get("key") == key]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.read())
