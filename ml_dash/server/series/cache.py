"""Decoded metric series kept in memory between reads, and brought up to date from the database on every read.

A chart of a 10M-point series spends most of a cold read fetching chunk BLOBs, yet between two reads of a live run
only the newest chunk or two changed. ``SeriesCache`` keeps each recently read series' stored-order arrays (keyed by
(experiment id, name), bounded in bytes: ``ML_DASH_SERIES_CACHE_MB``, default 256, 0 turns it off) together with the
pk and size of the newest chunk it has decoded.

Each read still asks the database, in one snapshot, for the series' ``(name_pk, ordered, tail_pk)`` from
``metric_names``. This is what keeps several worker processes on one database correct: the cache is per process, but
it is checked against the database every time, never trusted on its own. Both backends keep these invariants:

- every batch that touches a series inserts a chunk with a fresh, larger pk and points ``tail_pk`` at it (SQLite:
  AUTOINCREMENT and a single writer; PostgreSQL: the batch holds the series' ``metric_names`` row lock until it
  commits, so pks of one series are taken in commit order);
- the only chunk ever deleted is the tail, when a small batch is merged into it; the merged chunk (old points, then
  new) comes back under a fresh pk.

So with the cache holding chunks up to pk ``P``: ``tail_pk == P`` means nothing changed (no BLOB is read); otherwise
the chunks with pk > ``P`` are new, and if chunk ``P`` itself is gone it was merged into one of them, so its points
are dropped from the cached arrays and read again as part of the merged chunk. Anything that does not fit these rules
(the fetched chunks do not end at ``tail_pk``) falls back to a plain read and drops the entry.

The read logic is written once, as a generator that yields queries (``STATE``, ``EXISTS``, ``CHUNKS``) and gets their
answers back; ``storage.sql.protocol.run_sync``/``run_async`` drive it with a backend's query function.

Downsampled answers built from block summaries (``Envelope``, a few thousand points) are kept too, in a small LRU
(``ENVELOPES`` entries) keyed by (series, name_pk, tail_pk, step range, max_points): the same rules make
``(name_pk, tail_pk)`` name one state of the series, so a repeated chart read of an unchanged big series that is not
held in full costs one small query, and any write to it (a new tail pk) simply stops matching the old answers.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Generator, Sequence

import numpy as np

from ml_dash.server.series.chunks import (
    DTYPES,
    chunk_length,
    decode_chunks,
    decode_summary,
    step_order,
    summarize,
    to_series,
)
from ml_dash.server.series.downsample import Envelope, envelope, use_summaries
from ml_dash.server.series.types import RunView, Series

ENVELOPES = 64  # downsampled answers kept (each ~2 * max_points points)

# Queries the read generator yields, and what it expects back:
STATE = "state"  # () → None (no such metric) or (name_pk, ordered, tail_pk)
EXISTS = "exists"  # (chunk_pk,) → whether that chunk row still exists
CHUNKS = "chunks"  # (name_pk, after_pk | None, step_min, step_max) → rows (pk, steps, values, kinds, codec, run_pk)
#                    in pk order, only pk > after_pk, only chunks overlapping the step range (None: unbounded)
SUMMARIES = "summaries"  # (name_pk, step_min, step_max) → rows (pk, n, step_min, step_max, summary, run_pk) in pk
#                          order, only chunks overlapping the step range
POINTS = "points"  # (chunk pks,) → rows (pk, steps, values, kinds, codec, run_pk) of those chunks, in pk order
_COLUMNS = ("steps", "values", "kinds")
_POINT_BYTES = sum(DTYPES[c].itemsize for c in _COLUMNS)

Reader = Generator[tuple, Any, "Series | None"]


class _Buffer:
    """Growable stored-order columns. ``fill``: how far some entry has written; an entry may append in place only
    when it ends exactly there, so arrays handed out earlier never change under their holders."""

    __slots__ = ("columns", "fill")

    def __init__(self, capacity: int) -> None:
        self.columns = [np.empty(capacity, DTYPES[c]) for c in _COLUMNS]
        self.fill = 0

    @property
    def capacity(self) -> int:
        return len(self.columns[0])


class _Entry:
    __slots__ = ("name_pk", "tail_pk", "tail_n", "n", "ordered", "buffer", "_sorted", "nbytes", "bounds", "views")

    def __init__(self, name_pk: int, tail_pk: int, tail_n: int, n: int, ordered: bool, buffer: _Buffer,
                 bounds: tuple = ()) -> None:
        self.name_pk, self.tail_pk, self.tail_n, self.n, self.ordered = name_pk, tail_pk, tail_n, n, ordered
        self.buffer = buffer
        self.bounds = bounds  # (run_pk, start, end) of each chunk in stored order: what a RunView clips
        self.views: dict[RunView, Series] = {}  # the series as the last view saw it (a view changes with a new run)
        self._sorted: Series | None = None
        # Counted as if sorted: a series not logged in step order keeps a sorted copy once a plain read asks.
        self.nbytes = buffer.capacity * _POINT_BYTES + (0 if ordered else n * (_POINT_BYTES + 8))

    @property
    def sorted(self) -> Series:
        """The points in step order, made on the first plain read: a series not logged in step order is sorted once
        per change, not once per read (and not at all when only clipped views of it are read)."""
        if self._sorted is None:
            views = []
            for column in self.buffer.columns:
                view = column[:self.n]
                view.flags.writeable = False
                views.append(view)
            order = None if self.ordered else step_order(views[0])
            if order is not None:
                views = [v[order] for v in views]
                for view in views:
                    view.flags.writeable = False  # shared by every reader of the entry
            self._sorted = Series(*views)
        return self._sorted

    def series(self, step_min: float | None, step_max: float | None, view: RunView | None = None) -> Series:
        found = self.sorted if view is None or view.plain else self.views.get(view)
        if found is None:
            found = clipped([(run, self.sorted_columns(start, end)) for run, start, end in self.bounds], view)
            self.views = {view: found}  # replaced whole: readers on other threads see one dict or the other
        if step_min is None and step_max is None:
            return found
        return to_series(found.steps, found.values, found.kinds, step_min, step_max, ordered=True)

    def sorted_columns(self, start: int, end: int) -> tuple[np.ndarray, ...]:
        """The stored-order points ``start:end`` (one chunk's)."""
        return tuple(column[start:end] for column in self.buffer.columns)


def clipped(chunks: Sequence[tuple[int | None, Sequence[np.ndarray]]], view: RunView) -> Series:
    """The points of ``chunks`` ((run_pk, (steps, values, kinds)) in stored order) that ``view`` shows, in step
    order."""
    parts: list[list[np.ndarray]] = [[], [], []]
    for run_pk, columns in chunks:
        keep = view.mask(run_pk, columns[0])
        for part, column in zip(parts, columns):
            part.append(column if keep is None else column[keep])
    if not chunks:
        return to_series(*(np.zeros(0, DTYPES[c]) for c in _COLUMNS))
    return to_series(*(np.concatenate(part) for part in parts))


class SeriesCache:
    """LRU of decoded series, at most ``max_bytes`` (counting buffer capacity and sorted copies)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._envelopes: OrderedDict[tuple, Envelope] = OrderedDict()
        self._lock = threading.Lock()  # SQLite reads on a thread, PostgreSQL on the loop: keep both honest

    @classmethod
    def sized(cls, mb: float) -> SeriesCache | None:
        """A cache of ``mb`` megabytes (``ServerConfig.series_cache_mb``), None when it is 0 or less."""
        return cls(int(mb * 2**20)) if mb > 0 else None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str]) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def discard(self, key: tuple[str, str]) -> None:
        """Forget the series ``key``: its decoded points and its downsampled answers."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self.bytes -= entry.nbytes
            for found in [k for k in self._envelopes if k[0] == key]:
                del self._envelopes[found]

    def envelope(self, key: tuple) -> Envelope | None:
        """A downsampled answer kept under ``key`` (series, name_pk, tail_pk, step_min, step_max, max_points)."""
        with self._lock:
            found = self._envelopes.get(key)
            if found is not None:
                self._envelopes.move_to_end(key)
            return found

    def keep_envelope(self, key: tuple, found: Envelope) -> None:
        for array in (found.steps, found.values, found.kinds):
            array.flags.writeable = False  # shared by every later reader
        with self._lock:
            self._envelopes[key] = found
            self._envelopes.move_to_end(key)
            while len(self._envelopes) > ENVELOPES:
                self._envelopes.popitem(last=False)

    def _store(self, key: tuple[str, str], base: _Entry | None, entry: _Entry) -> None:
        """Put ``entry`` in place of ``base``; if another read replaced ``base`` meanwhile, keep that one."""
        with self._lock:
            current = self._entries.get(key)
            if current is not base:
                return
            if current is not None:
                del self._entries[key]
                self.bytes -= current.nbytes
            if entry.nbytes > self.max_bytes:
                return  # bigger than the whole cache: served, not kept
            self._entries[key] = entry
            self.bytes += entry.nbytes
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.nbytes

    def extend(self, key: tuple[str, str], base: _Entry | None, drop: int, rows: Sequence[Sequence[Any]],
               name_pk: int, ordered: bool) -> _Entry:
        """``base`` less its last ``drop`` points, then the chunks ``rows`` (pk, steps, values, kinds, codec; at least
        one): the new entry, also stored unless another read replaced ``base`` meanwhile."""
        parts = decode_chunks(tuple(row[1:5]) for row in rows)
        start = 0 if base is None else base.n - drop
        end = start + len(parts[0])
        with self._lock:
            buffer = None if base is None else base.buffer
            if (buffer is None or buffer.fill != base.n or end > buffer.capacity
                    or not _same_prefix(buffer, start, base.n, parts)):
                # A fresh buffer: exact size for a first read (most series are never appended to again), with room
                # to grow once a series turns out to be live.
                old = buffer
                buffer = _Buffer(end if base is None else end + end // 4 + 1024)
                if old is not None:
                    for column, previous in zip(buffer.columns, old.columns):
                        column[:start] = previous[:start]
            # Rewriting the dropped points in place is safe: _same_prefix checked the merged chunk repeats them.
            for column, part in zip(buffer.columns, parts):
                column[start:end] = part
            buffer.fill = end
        tail_n = chunk_length(rows[-1][1], rows[-1][4])
        bounds = [] if base is None else list(base.bounds[:-1] if drop else base.bounds)
        at = start
        for row in rows:
            size = chunk_length(row[1], row[4])
            bounds.append((row[5] if len(row) > 5 else None, at, at + size))
            at += size
        entry = _Entry(name_pk, rows[-1][0], tail_n, end, bool(ordered), buffer, tuple(bounds))
        self._store(key, base, entry)
        return entry


def _same_prefix(buffer: _Buffer, start: int, stop: int, parts: Sequence[np.ndarray]) -> bool:
    """Whether ``parts`` begin with the buffer's points ``start:stop`` byte for byte (NaN included)."""
    if stop == start:
        return True
    if len(parts[0]) < stop - start:
        return False
    return all(column[start:stop].tobytes() == part[:stop - start].tobytes()
               for column, part in zip(buffer.columns, parts))


def read_series(cache: SeriesCache | None, key: tuple[str, str], step_min: float | None,
                step_max: float | None, max_points: int | None = None, view: RunView | None = None) -> Reader:
    """The series ``key`` as ``Storage.metric_series`` answers it; a generator of queries (see the module doc).

    With ``max_points``, a range wide enough for it (``series.downsample.use_summaries``) of a series logged in step order
    is answered, unless the cache holds it (then brought up to date), as an ``Envelope`` built from the chunks' block summaries:
    only the summaries and the chunks cut by the range's edges are read, never the other points.

    ``view`` (``RunView``): the points of runs a later run superseded are left out (or only they are kept): a chunk
    wholly on one side of its run's cutoff is taken or skipped by its step range, summary and all; only a chunk
    that straddles a cutoff is read and cut point by point.
    """
    if view is not None and view.plain:
        view = None
    state = yield (STATE,)
    if state is None:
        if cache is not None:
            cache.discard(key)  # the series is gone (purged): nothing of it stays in memory
        return None
    name_pk, ordered, tail_pk = state
    entry = None if cache is None else cache.get(key)
    if entry is not None and entry.name_pk != name_pk:
        cache.discard(key)
        entry = None
    if entry is not None and entry.tail_pk == tail_pk:
        return entry.series(step_min, step_max, view)  # nothing was written since: no BLOB read at all
    # A stale entry (a live run) is cheaper to bring up to date from its new chunks than to re-read every summary.
    if max_points is not None and (ordered or view is not None) and tail_pk is not None and entry is None:
        kept = (key, name_pk, tail_pk, step_min, step_max, max_points, view)
        found = None if cache is None else cache.envelope(kept)
        if found is not None:
            return found  # the same answer for the same state of the series: no summary read
        if view is None:
            found = yield from _summary_read(name_pk, step_min, step_max, max_points)
        else:
            found = yield from clipped_summary_read(name_pk, step_min, step_max, max_points, view)
        if found is not None:
            if cache is not None:
                cache.keep_envelope(kept, found)
            return found
    ranged = step_min is not None or step_max is not None
    if cache is not None and tail_pk is not None and (entry is not None or not ranged):
        drop = 0
        if entry is not None and not (yield (EXISTS, entry.tail_pk)):
            drop = entry.tail_n  # merged into a newer chunk: its points come back with that one
        rows = yield (CHUNKS, name_pk, None if entry is None else entry.tail_pk, None, None)
        if rows and rows[-1][0] == tail_pk:
            return cache.extend(key, entry, drop, rows, name_pk, ordered).series(step_min, step_max, view)
        cache.discard(key)  # not the history the invariants promise: read it plainly
    rows = yield (CHUNKS, name_pk, None, step_min, step_max)
    if view is not None:
        found = clipped([(row[5], decode_chunks([tuple(row[1:5])])) for row in rows], view)
        return to_series(found.steps, found.values, found.kinds, step_min, step_max, ordered=True)
    steps, values, kinds = decode_chunks(tuple(row[1:5]) for row in rows)
    return to_series(steps, values, kinds, step_min, step_max, bool(ordered))


def _summary_read(name_pk: int, step_min: float | None, step_max: float | None, max_points: int) -> Reader:
    """The ``Envelope`` of a series in step order (every chunk ordered, chunks in pk order = step order), or None
    when the range is too narrow for summaries or a chunk lacks one (the caller then reads points)."""
    rows = yield (SUMMARIES, name_pk, step_min, step_max)
    if not rows or not use_summaries(sum(row[1] for row in rows), max_points):
        return None
    summaries = [decode_summary(row[4], row[1]) for row in rows]
    if any(summary is None for summary in summaries):
        return None
    edges = [row[0] for row in rows if (step_min is not None and row[2] < step_min)
             or (step_max is not None and row[3] > step_max)]
    points = {row[0]: row for row in ((yield (POINTS, edges)) if edges else [])}
    parts, count = [], 0
    for row, summary in zip(rows, summaries):
        if row[0] in points:  # cut by the range: summarise its in-range points afresh
            steps, values, kinds = decode_chunks([tuple(points[row[0]])[1:5]])
            cut = to_series(steps, values, kinds, step_min, step_max, ordered=True)
            summary, n = summarize(cut.steps, cut.values, cut.kinds, ordered=True), len(cut.steps)
        else:
            n = row[1]
        if n:
            parts.append((summary, count))
            count += n
    if not use_summaries(count, max_points):
        return None
    return envelope(parts, count, max_points)


def clipped_summary_read(name_pk: int, step_min: float | None, step_max: float | None, max_points: int,
                         view: RunView) -> Reader:
    """``_summary_read`` under a ``RunView``: each chunk is taken whole (its summary), skipped, or, when its run's
    cutoff or the range's edge cuts it, read and summarised afresh; the pieces are then put in step order. None
    (the caller reads points) when pieces overlap in steps, a chunk has points without a step, or the range is
    too narrow for summaries."""
    rows = yield (SUMMARIES, name_pk, step_min, step_max)
    pieces = []
    for row in rows:
        if row[2] is None:
            return None
        cut = view.cutoff(row[5] if len(row) > 5 else None)
        shown = (row[3] >= cut, row[2] >= cut) if view.superseded else (row[2] < cut, row[3] < cut)
        if not shown[0]:
            continue  # every point of the chunk is on the other side of its run's cutoff
        edge = (step_min is not None and row[2] < step_min) or (step_max is not None and row[3] > step_max)
        pieces.append((row, shown[1] and not edge))
    if not pieces or not use_summaries(sum(row[1] for row, _ in pieces), max_points):
        return None
    cut_pks = [row[0] for row, whole in pieces if not whole]
    points = {row[0]: row for row in ((yield (POINTS, cut_pks)) if cut_pks else [])}
    parts = []  # (first step, last step, summary, n)
    for row, whole in pieces:
        if whole:
            summary = decode_summary(row[4], row[1])
            if summary is None or not len(summary) or np.isnan(summary["first_step"][0]):
                return None  # no summary, or points without a step (they sort first): read the points
            parts.append((row[2], row[3], summary, row[1]))
            continue
        stored = points[row[0]]
        found = clipped([(row[5] if len(row) > 5 else None, decode_chunks([tuple(stored[1:5])]))], view)
        found = to_series(found.steps, found.values, found.kinds, step_min, step_max, ordered=True)
        if len(found.steps):
            if np.isnan(found.steps[0]):
                return None
            parts.append((found.steps[0], found.steps[-1],
                          summarize(found.steps, found.values, found.kinds, ordered=True), len(found.steps)))
    parts.sort(key=lambda part: (part[0], part[1]))
    if any(later[0] < earlier[1] for earlier, later in zip(parts, parts[1:])):
        return None  # interleaved steps (runs logging at once): the points path sorts them
    count, placed = 0, []
    for _first, _last, summary, n in parts:
        placed.append((summary, count))
        count += n
    if not use_summaries(count, max_points):
        return None
    return envelope(placed, count, max_points)
