"""The one place an event's shape is defined: what the API modules queue and what a sink receives.

Two shapes, chosen for the caller's cost:

* a **metric row** is the caller's own ``**kwargs`` dict with two int-keyed items appended, ``{source: timestamp,
  STEP_KEY: step}`` (user keys are always ``str``, so they never collide). ``source`` (>= 1) indexes
  ``METRIC_SOURCES``: which store, which namespace, and whether values still need converting. A dict of atomic
  values is untracked by the cyclic GC, so a long queue costs garbage collections nothing.
* everything else is a **tuple** ``(store key, kind, a, b, c, d)`` of one of the kinds below, built by the
  constructors here. Its positions are named below (``STORE``, ``KIND`` and each kind's own); a reader indexes with
  those names or unpacks the whole tuple in the order its constructor documents, never by a bare number.

Stores are named by an int key, not by reference, for the same GC reason: a queued tuple of atomic values is
untracked after its first young collection.
"""
from __future__ import annotations

from typing import Any

METRIC_AGG, RECORD, BARRIER, MEDIA = 1, 2, 3, 4
STEP_KEY = 0
RUN_STREAM = "run"  # a record_event for this stream is a run's mark (format.branches), not a line of a file
# Positions in an event tuple. Every kind: which store (None for a barrier) and which kind.
STORE, KIND = 0, 1
RECORD_STREAM, RECORD_BODY, RECORD_DEFERRED = 2, 3, 4  # record_event
AGG_TIMESTAMP, AGG_STEP, AGG_SPEC = 2, 3, 4  # aggregate_event; AGG_SPEC holds (rows, how, extra, namespace)
BARRIER_SIGNAL = 2  # barrier_event
MEDIA_TIMESTAMP, MEDIA_STEP, MEDIA_ITEMS, MEDIA_BYTES = 2, 3, 4, 5  # media_event
METRIC_SOURCES: list[tuple[int, str | None, bool]] = [(-1, None, False)]  # index 0 is never a source: it is STEP_KEY
STORE_DIRECTORIES: list[str] = []  # index = store key: the experiment directory its events are written under
STORE_RANKS: list[int] = []  # index = store key: the rank whose files it writes (0: today's names; docs/distributed.md)


def register_store(directory: str, rank: int = 0) -> int:
    """A new store key for an experiment directory (one per ``Experiment`` object), writing ``rank``'s files."""
    STORE_DIRECTORIES.append(directory)
    STORE_RANKS.append(rank)
    return len(STORE_DIRECTORIES) - 1


def register_metric_source(store_key: int, namespace: str | None, convert: bool) -> int:
    """The int a metric row carries as its timestamp's key: names the store, the namespace and whether to convert."""
    METRIC_SOURCES.append((store_key, namespace, convert))
    return len(METRIC_SOURCES) - 1


def split_metric_event(event: dict) -> tuple[int, str | None, bool, float, object]:
    """Take the two appended items off a metric row: (store key, namespace, convert, timestamp, step)."""
    _, step = event.popitem()
    source, timestamp = event.popitem()
    store_key, namespace, convert = METRIC_SOURCES[source]
    return store_key, namespace, convert, timestamp, step


def record_event(store_key: int, stream: str, record: dict, deferred: bool) -> tuple:
    """A JSON record for ``stream`` (parameters, logs). ``deferred``: it holds tensors the writer must still read.

    ``(store_key, RECORD, stream, record, deferred, None)``: positions ``RECORD_STREAM``, ``RECORD_BODY``,
    ``RECORD_DEFERRED``."""
    return (store_key, RECORD, stream, record, deferred, None)


def aggregate_event(store_key: int, timestamp: float, step: Any, rows: Any, how: str, extra: dict,
                    namespace: str | None) -> tuple:
    """``metrics.flush()``: the writer aggregates ``rows`` (``[(step, metrics)]`` or collected tensors) by ``how``.

    ``(store_key, METRIC_AGG, timestamp, step, (rows, how, extra, namespace), None)``: positions ``AGG_TIMESTAMP``,
    ``AGG_STEP``, ``AGG_SPEC``."""
    return (store_key, METRIC_AGG, timestamp, step, (rows, how, extra, namespace), None)


def media_event(store_key: int, timestamp: float, step: Any, items: list, nbytes: int) -> tuple:
    """``exp.media.log``: ``items`` is ``[(key, index, captured media object)]``, encoded by the writer; ``nbytes``
    is what the captured data holds, counted against the queue's byte budget until the writer has written it.

    ``(store_key, MEDIA, timestamp, step, items, nbytes)``: positions ``MEDIA_TIMESTAMP``, ``MEDIA_STEP``,
    ``MEDIA_ITEMS``, ``MEDIA_BYTES``."""
    return (store_key, MEDIA, timestamp, step, items, nbytes)


def media_bytes(events: list) -> int:
    """The captured bytes that the media events among ``events`` hold (other tuples hold None at ``MEDIA_BYTES``)."""
    return sum(e[MEDIA_BYTES] for e in events if type(e) is tuple and e[KIND] == MEDIA)


def barrier_event(signal: Any) -> tuple:
    """A flush barrier: the writer calls ``signal.set()`` (at ``BARRIER_SIGNAL``) once everything queued before it is
    written."""
    return (None, BARRIER, signal, None, None, None)


def is_barrier(event: object) -> bool:
    return type(event) is tuple and event[KIND] == BARRIER
