"""A metrics batch as the storage backends write it: one encoded chunk per metric name, built before the transaction.

Building the chunks is the CPU-heavy part of storing a batch (numpy arrays and block summaries for every name), so
ingest builds a ``MetricBatch`` where it decodes the request body (in a process pool or a thread, never on the event
loop) and the backends only write its rows. ``MetricBatch.of_events`` builds the same thing from validated event
dicts, for callers that have those (``storage.copy``, tests, small bodies).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml_dash.server.series.chunks import EncodedChunk, encode_chunk


@dataclass(frozen=True)
class MetricBatch:
    """``names`` in first-seen order; per name its chunk and its last ``(step, timestamp, value)`` point (the value
    as validated: float, int, bool or None); ``count``: the events stored (what the answer reports as ``stored``)."""

    names: tuple[str, ...]
    chunks: dict[str, EncodedChunk]
    last: dict[str, tuple[Any, Any, Any]]
    count: int

    @classmethod
    def of_events(cls, events: "list[dict] | MetricBatch") -> "MetricBatch":
        """Validated metric events (``server.ingest``) as a batch; a ``MetricBatch`` is returned as it is."""
        if isinstance(events, MetricBatch):
            return events
        points = points_by_name(events)
        return cls(tuple(points), {name: encode_chunk(named) for name, named in points.items()},
                   {name: named[-1] for name, named in points.items()}, len(events))


def points_by_name(events: list[dict]) -> dict[str, list[tuple[Any, Any, Any]]]:
    """A metrics batch as name → its (step, timestamp, value) points in batch order: one chunk each."""
    points: dict[str, list[tuple[Any, Any, Any]]] = {}
    for event in events:
        step, timestamp = event.get("step"), event.get("timestamp")
        for name, value in event["metrics"].items():
            points.setdefault(name, []).append((step, timestamp, value))
    return points
