"""The local sink: encodes events with orjson and appends each file's lines with a few large ``writev()`` calls.

Files are opened ``O_APPEND``: several processes (DDP ranks, DataLoader workers) appending to one experiment never
interleave inside a line, because every ``writev`` carries whole lines only. ``writev`` takes the encoded pieces as
they are: no ``b"".join`` at all (joining a batch's megabytes at once was fresh memory, ~1 ms of page faults with the
GIL held), in calls of up to ``_WRITE_BYTES``.
The writer works through a batch in pieces and may hand over the GIL between them (``pipeline.pace``).
"""
from __future__ import annotations

import errno
import logging
import math
import operator
import os
from typing import Callable

import orjson

from ml_dash.client.events import (
    KIND,
    MEDIA,
    METRIC_AGG,
    RUN_STREAM,
    METRIC_SOURCES,
    RECORD,
    STORE,
    STORE_DIRECTORIES,
    STORE_RANKS,
    split_metric_event,
)
from ml_dash.format.branches import mark_row
from ml_dash.client.media.segments import SegmentWriter
from ml_dash.client.values import clean_metrics, metric_to_python, read_metric_tensors, resolve_deferred
from ml_dash.format.layout import stream_path
from ml_dash.format.limits import MAX_NAME_LENGTH
from ml_dash.format.values import TEXT_TO_NONFINITE, json_safe
from ml_dash.client.pipeline.pace import pace

logger = logging.getLogger("ml_dash")

_OPTS = orjson.OPT_APPEND_NEWLINE


def _join_and_write(fd: int, buffers: list) -> int:  # where there is no os.writev (Windows)
    return os.write(fd, b"".join(buffers))


_writev = getattr(os, "writev", _join_and_write)  # the one call that appends bytes; tests simulate a full disk with it
_WRITE_BUFFERS = min(1024, os.sysconf("SC_IOV_MAX")) if hasattr(os, "sysconf") else 1024  # at most IOV_MAX per call
# Bytes per writev(). Measured per event on the writer (thread CPU, kernel included): 256 KB calls ~62 ns, 64 KB
# joined writes ~60-90 ns, 4 MB calls 170-330 ns (the copy into the page cache no longer runs from the CPU cache).
_WRITE_BYTES = 256 * 1024


def _line_group_end(lines: list[bytes], start: int) -> int:
    """Where the next ``writev()`` group starting at ``lines[start]`` ends: whole lines only (it ends with a buffer
    ending in a newline), at most ``_WRITE_BUFFERS`` buffers and about ``_WRITE_BYTES`` bytes unless one line is
    longer. A buffer holds whole lines, or (the metric encoder's) lines whose last newline is the next buffer."""
    count = len(lines)
    end, size, cut = start, 0, start
    while end < count and (end == start or end - start < _WRITE_BUFFERS and size + len(lines[end]) <= _WRITE_BYTES):
        size += len(lines[end])
        end += 1
        if lines[end - 1].endswith(b"\n"):
            cut = end
    if cut > start:
        return cut
    while end < count and not lines[end - 1].endswith(b"\n"):  # one line past the limits: still written whole
        end += 1
    return end


def _unwritten(group: list, written: int) -> list:
    """The part of ``group`` that a ``writev()`` which wrote ``written`` bytes left, a cut buffer as a memoryview."""
    for i, buffer in enumerate(group):
        if written < len(buffer):
            return [memoryview(buffer)[written:], *group[i + 1:]] if written else group[i:]
        written -= len(buffer)
    return []


class LocalStore:
    """One experiment's directory as seen by the writer: lazily opened append-only files (``_events`` names it)."""

    def __init__(self, key: int, directory: str, rank: int = 0) -> None:
        self.directory = directory
        self.key = key
        self.rank = rank  # a rank > 0 of a distributed job writes its own files (format.layout.stream_path)
        self.dropped = 0  # events dropped by the ``drop`` back-pressure policy
        self._fds: dict[str, int] = {}
        self._pending: dict[str, list[bytes]] = {}  # lines that could not be written yet (disk full, ...)

    def path(self, stream: str) -> str:
        return stream_path(self.directory, stream, self.rank)

    def append(self, stream: str, lines: list[bytes]) -> None:
        pending = self._pending.pop(stream, None)
        if pending:
            lines = pending + lines
        done, count = 0, len(lines)
        try:
            fd = self._fds.get(stream)
            if fd is None:
                os.makedirs(self.directory, exist_ok=True)
                fd = self._fds[stream] = os.open(self.path(stream), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            while done < count:
                end = _line_group_end(lines, done)
                group = lines[done:end]
                while group:  # a regular file takes it all at once; loop only for the short write of a filling disk
                    group = _unwritten(group, _writev(fd, group))
                    if group:  # the first buffer left may be the unwritten tail of a cut one
                        done = end - len(group)
                        lines = lines[:done] + group + lines[end:]
                done = end
        except OSError as exc:
            # Keep only the bytes not written yet: what is in the file stays there (a line cut short by a full disk
            # is completed by the next attempt, never written twice), and nothing logged is lost if the disk comes back.
            rest = lines[done:]
            if rest:
                self._pending[stream] = [b"".join(rest)]
            raise StoreError(f"{self.path(stream)}: {exc.strerror or exc}") from exc

    def sync(self) -> None:
        for fd in self._fds.values():
            try:
                os.fsync(fd)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EROFS):
                    raise

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def pending_streams(self) -> list[str]:
        """The streams holding lines not written yet (retried with the next batch)."""
        return list(self._pending)

    def forget_pending(self) -> None:
        self._pending.clear()


class StoreError(OSError):
    pass


def _aggregate(rows: list, how: str, step, extra: dict, namespace: str | None) -> tuple[object, dict]:
    if type(rows) is not list:  # collected tensors, stacked and copied by the caller (ml_dash.client.tensors.DeferredRows)
        rows = rows.resolve()
    columns: dict[str, list] = {}
    last_step = None
    for row_step, metrics in rows:
        if row_step is not None:
            last_step = row_step
        for k, v in metrics.items():
            v = metric_to_python(v)
            if isinstance(v, str):  # non-finite spelled as text; aggregate the float
                v = TEXT_TO_NONFINITE[v]
            if v is not None:
                columns.setdefault(k, []).append(float(v) if type(v) is bool else v)
    out = {}
    for k, values in columns.items():
        if how == "mean":
            out[k] = math.fsum(values) / len(values)
        elif how == "sum":
            out[k] = math.fsum(values) if any(type(v) is float for v in values) else sum(values)
        elif how == "min":
            out[k] = min(values)
        elif how == "max":
            out[k] = max(values)
        else:  # "last"
            out[k] = values[-1]
    out.update(extra)
    return (step if step is not None else last_step), clean_metrics(out, namespace)


def _encode_line(record: dict) -> bytes:
    try:
        return orjson.dumps(record, option=_OPTS)
    except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits: keep the point, as a float
        return orjson.dumps(json_safe(record), option=_OPTS)


_ROW_SEPARATOR = b'},{"timestamp":'
_PIECE = 128  # events handled between two chances to hand over the GIL (~0.1-0.2 ms of work)
_NONES = [None] * _PIECE
_ENCODE_CHUNK = 256  # measured: 256-512 rows per call beat 1024 by ~12% (fewer row dicts alive at each young GC)


_KNOWN_NAMES: set[str] = set()  # metric names already found short enough (the writer's only)
_KNOWN_NAMES_MAX = 100_000  # past it the set starts over: names made up per step must not grow it for good
_REFUSED_NAMES: set[str] = set()  # reported once each
_metrics_of = operator.itemgetter("metrics")


def _drop_long_names(rows: list[dict]) -> None:
    """Leave out of ``rows`` any metric whose name is longer than ``MAX_NAME_LENGTH``, with one WARNING per name.

    The server refuses such names; ``metrics.log`` does not check them (that would cost its caller ~10% per call), so
    the writer does, once per new name: one C-level union of the chunk's names, then a set difference."""
    names = set().union(*map(_metrics_of, rows))
    if _KNOWN_NAMES.issuperset(names):
        return
    new = names - _KNOWN_NAMES
    long = {name for name in new if type(name) is str and len(name) > MAX_NAME_LENGTH}
    if len(_KNOWN_NAMES) + len(new) > _KNOWN_NAMES_MAX:
        _KNOWN_NAMES.clear()
    _KNOWN_NAMES.update(new - long)
    if not long:
        return
    emptied = set()
    for row in rows:
        metrics = row["metrics"]
        hit = long.intersection(metrics)
        for name in hit:
            del metrics[name]
        if hit and not metrics:
            emptied.add(id(row))
    if emptied:  # a row that held only refused names is left out, not written empty
        rows[:] = [row for row in rows if id(row) not in emptied]
    for name in long - _REFUSED_NAMES:
        _REFUSED_NAMES.add(name)
        logger.warning("ml-dash: metric name %r... is %d characters long; names are limited to %d (the server refuses "
                       "longer ones): its values are not written", name[:60], len(name), MAX_NAME_LENGTH)


def _encode_metric_rows(rows: list[dict]) -> list[bytes]:
    """Encode many metric rows with one orjson call, then cut the JSON array into lines.

    Safe because a metric row is flat — ``{"timestamp", "step", "metrics": {name: scalar}}`` — so the byte sequence
    ``},{"timestamp":`` only occurs between rows: inside a string orjson would have escaped the quote.

    Rows of plain values arrive unchecked: orjson writes NaN and ±inf as ``null``, so a chunk whose JSON holds
    ``null`` anywhere (a non-finite value, a None, or just a name containing it) or that orjson refuses (a numpy
    float32, an int beyond 64 bits) has its values converted and is encoded again. Checking each row's values in
    Python instead cost the writer about a quarter of its time per row.
    """
    _drop_long_names(rows)
    try:
        array = orjson.dumps(rows)
    except orjson.JSONEncodeError:
        array = None
    if array is None or b"null" in array:
        for row in rows:
            _convert_values(row["metrics"])
        try:
            array = orjson.dumps(rows)
        except orjson.JSONEncodeError:
            return [_encode_line(row) for row in rows]
    return [array[1:-1].replace(_ROW_SEPARATOR, b'}\n{"timestamp":'), b"\n"]


def _convert_values(metrics: dict) -> None:
    """Non-finite floats to their text spelling, numpy scalars to Python; strings are already converted ones."""
    for key, value in metrics.items():
        if type(value) is not str:
            metrics[key] = metric_to_python(value)


class _Stores(dict):
    """Store key → ``LocalStore``, made on first use from the directory the key was registered with."""

    def __missing__(self, key: int) -> LocalStore:
        store = self[key] = LocalStore(key, STORE_DIRECTORIES[key], STORE_RANKS[key])
        return store


class JsonlSink:
    def __init__(self) -> None:
        self.on_error: Callable[[BaseException | None], None] = lambda exc: None
        # e.g. the uploader: "new durable bytes under these store keys" (called on the writer: flag and wake only)
        self.after_write: list[Callable[[set], None]] = []
        self.stores: dict[int, LocalStore] = _Stores()
        # Store key → the run mark of a run that has logged no metric yet (format.branches): written just before the
        # run's first metric row, so a run that logs none leaves metrics.jsonl as it was, and an undeclared branch
        # step is that first row's step.
        self._marks: dict[int, dict] = {}
        self._stores_with_pending: set[LocalStore] = set()
        # Tuple events by kind (metric rows, the common case, are dicts handled inline in export()). A handler adds
        # its event's output to the batch's ``metric_rows`` (per store key) or ``by_file`` ((store, stream) -> lines).
        self._handlers: dict[int, Callable[[tuple, dict, dict], None]] = {
            METRIC_AGG: self._aggregated, RECORD: self._record, MEDIA: self._media}
        self.segments: dict[int, SegmentWriter] = {}  # per store key: where its media bytes go

    def _aggregated(self, event: tuple, metric_rows: dict, by_file: dict) -> None:
        key, _kind, timestamp, step, (rows, how, extra, namespace), _ = event  # aggregate_event's shape
        step, metrics = _aggregate(rows, how, step, extra, namespace)
        if metrics:
            if key in self._marks:
                self._mark(key, step, timestamp, metric_rows.setdefault(key, []))
            metric_rows.setdefault(key, []).append({"timestamp": timestamp, "step": step, "metrics": metrics})

    def _record(self, event: tuple, metric_rows: dict, by_file: dict) -> None:
        key, _kind, stream, record, deferred, _ = event  # record_event's shape; deferred: tensors still to be read
        if stream == RUN_STREAM:  # a run began: its mark waits for the run's first metric row
            self._marks[key] = record
            return
        if deferred:
            record = resolve_deferred(record)
        by_file.setdefault((self.stores[key], stream), []).append(_encode_line(record))

    def _mark(self, key: int, step: object, timestamp: float, rows: list) -> None:
        mark = self._marks.pop(key)
        if not rows and not mark.get("fork") and not self._has_metrics(key):
            return  # the directory's first metrics: nothing to supersede, and a one-run file stays as it always was
        if mark.get("branch_step") == "first":  # undeclared: the run branches at its first logged step
            mark = dict(mark, branch_step=step)
        mark.pop("fork", None)
        rows.append(mark_row(timestamp, mark))

    def _has_metrics(self, key: int) -> bool:
        try:  # once per run: earlier runs' rows are on disk (a run's end flushes before the next run can begin)
            return os.path.getsize(self.stores[key].path("metrics")) > 0
        except OSError:
            return False
    def _media(self, event: tuple, metric_rows: dict, by_file: dict) -> None:
        """Each item encoded, its bytes appended to a segment now, its index line written with the batch's lines
        (so always after its bytes: docs/media.md). An item that cannot be written is dropped and logged."""
        from ml_dash.client.media.encode import encode_item  # numpy (and torch for tensors): once media is logged
        from ml_dash.format.media import index_entry

        key, _kind, timestamp, step, items, _nbytes = event  # media_event's shape
        store = self.stores[key]
        segments = self.segments.get(key)
        if segments is None:
            segments = self.segments[key] = SegmentWriter(store.directory)
        lines = by_file.setdefault((store, "media"), [])
        for name, index, item in items:
            try:
                fmt, payload, shape, meta = encode_item(item)
                segment, offset = segments.append(payload)
            except Exception as exc:  # one bad item (or a full disk) must not cost the batch
                logger.error("ml-dash: media %r (step %s) was not written: %s", name, step, exc)
                continue
            lines.append(_encode_line(index_entry(timestamp, step, name, index, item.kind, fmt, segment, offset,
                                                  payload, shape, getattr(item, "caption", None), meta)))
            pace()  # an item can be a millisecond of work: hand the GIL back to the training thread between items

    def dropped(self, store_key: int) -> int:
        """Events of this store dropped by the ``drop`` back-pressure policy."""
        store = self.stores.get(store_key)
        return 0 if store is None else store.dropped

    def close_store(self, store_key: int) -> None:
        """fsync and close one store's files; a later event reopens them. ``OSError`` if the fsync failed."""
        store = self.stores.get(store_key)
        segments = self.segments.pop(store_key, None)
        if segments is not None:
            try:
                segments.sync()
            finally:
                segments.close()
        if store is not None:
            try:
                store.sync()
            finally:
                store.close()

    def export(self, batch: list) -> None:
        stores = self.stores
        by_file: dict[tuple[LocalStore, str], list[bytes]] = {}
        metric_rows: dict[int, list[dict]] = {}  # per store key; encoded with one orjson call per chunk
        encoded: dict[int, list[bytes]] = {}
        last_key, rows = None, []
        sources = METRIC_SOURCES
        handlers = self._handlers
        marks = self._marks
        total = len(batch)
        tensors: list = []  # (row, name, tensor) still to read, set aside by clean_metrics
        for lo in range(0, total, _PIECE):
            # In pieces: between two, the writer may hand over the GIL (pipeline.pace), and the piece's events are
            # dropped from the batch, so they are freed as their rows are encoded, not 20k at the end at once.
            hi = min(lo + _PIECE, total)
            for event in batch[lo:hi]:
                try:
                    if type(event) is dict:  # a metric row: see split_metric_event, inlined here for speed
                        _, step = event.popitem()
                        source, timestamp = event.popitem()
                        key, namespace, convert = sources[source]
                        if key != last_key:  # consecutive events usually share a store: skip the dict lookup
                            rows = metric_rows.get(key)
                            if rows is None:
                                rows = metric_rows[key] = []
                            last_key = key
                            if key in marks:  # this store's run logs its first metric row
                                self._mark(key, step, timestamp, rows)
                        if convert or namespace is not None:  # plain rows are checked per chunk when encoded
                            event = clean_metrics(event, namespace, tensors)
                        rows.append({"timestamp": timestamp, "step": step, "metrics": event})
                        if len(rows) >= _ENCODE_CHUNK:  # encode early: short-lived rows keep the young generation small
                            if tensors:
                                read_metric_tensors(tensors)
                            encoded.setdefault(key, []).extend(_encode_metric_rows(rows))
                            rows.clear()
                        continue
                    handlers[event[KIND]](event, metric_rows, by_file)
                    last_key = None  # a handler may have added a store's list: look it up again
                except Exception as exc:  # a bug must not kill the writer; say what was lost
                    logger.error("ml-dash: dropped an event that could not be encoded: %r", exc)
            if tensors:  # the piece's device tensors: one stacked copy per device and dtype
                read_metric_tensors(tensors)
            batch[lo:hi] = _NONES[:hi - lo]
            pace()
        for key, rows in metric_rows.items():
            by_file[(stores[key], "metrics")] = encoded.get(key, []) + (_encode_metric_rows(rows) if rows else [])
        for store in list(self._stores_with_pending):
            for stream in store.pending_streams():
                by_file.setdefault((store, stream), [])
        self._write(by_file)

    def count_drop(self, event: dict | tuple) -> None:
        store_key = split_metric_event(event)[0] if type(event) is dict else event[STORE]
        self.stores[store_key].dropped += 1

    def _write(self, by_file: dict) -> None:
        error = None
        touched = set()
        for (store, stream), lines in by_file.items():
            try:
                store.append(stream, lines)
                touched.add(store.key)
            except StoreError as exc:
                error = exc
            if store.has_pending:
                self._stores_with_pending.add(store)
            else:
                self._stores_with_pending.discard(store)
        self.on_error(error)
        for listener in self.after_write:
            listener(touched)

    @property
    def has_pending(self) -> bool:
        return bool(self._stores_with_pending)

    def shutdown(self, timeout: float | None) -> None:
        pass

    def after_fork_in_child(self) -> None:
        # Lines the parent could not write yet are the parent's to retry: a child writing them too would duplicate them.
        for store in self._stores_with_pending:
            store.forget_pending()
        self._stores_with_pending.clear()

