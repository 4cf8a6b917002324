"""Metric writes both SQL backends follow: the series-state bookkeeping and the merge policy (a batch's points per name
are grouped and encoded before the transaction: ``series.batch``).

The writers themselves differ (SQLite: a few statements per name; PostgreSQL: a few array statements per batch), so
each backend keeps its own and calls these for what they decide alike.
"""
from __future__ import annotations

from typing import Any

from ml_dash.server.series.chunks import EncodedChunk, merge_encoded

# A live run sends a batch about every second: merging small tails keeps a long run at a few hundred chunks, and
# caps what one batch rewrites at about MERGE_BELOW * 25 bytes.
MERGE_BELOW = 4096


def next_chunk(chunk: EncodedChunk, step_hi: float | None, ordered: Any,
               tail: dict[str, bytes] | None) -> tuple[EncodedChunk, float | None, bool]:
    """The chunk row to store for a batch's ``chunk`` of one series and the series' new (step_hi, ordered).

    ``tail``: the columns (steps, values, kinds, timestamps) of the series' newest chunk when a writer took it out to
    merge (fewer than ``MERGE_BELOW`` points, same run); the stored row is then the tail's points followed by the new
    ones, under a fresh pk, so readers (and caches) that saw the old tail learn from its disappearance that it grew.
    ``ordered`` stays true while every point so far came in step order (reads then skip the sort).
    """
    still_ordered = bool(ordered and chunk.ordered and (step_hi is None or chunk.step_min >= step_hi))
    if chunk.step_max is not None:
        step_hi = chunk.step_max if step_hi is None else max(step_hi, chunk.step_max)
    return (chunk if tail is None else merge_encoded(tail, chunk)), step_hi, still_ordered
