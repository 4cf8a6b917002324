"""``SQLStorage``: the ``Storage`` methods both SQL backends share, as bodies of ``protocol`` queries.

A backend subclasses it: it says how a body runs (``_read``, ``_write``), its dialect (the class attributes and
``_in``/``_decode_last``) and supplies what has no portable SQL (create-or-get upserts, ``apply_batch``'s transaction
and its row writers). Shared SQL uses ``?`` placeholders and reads rows by position only.
"""
from __future__ import annotations

import abc
import math
import time
from typing import Any, Callable, Sequence, TypeVar

import orjson

from ml_dash.format.layout import RANK_SERIES_PREFIX, series_rank
from ml_dash.server.config import SERIES_CACHE_MB
from ml_dash.server.errors import NotFound, StreamConflict
from ml_dash.server.series.cache import (
    EXISTS,
    POINTS,
    STATE,
    SUMMARIES,
    SeriesCache,
    read_series,
)
from ml_dash.format.branches import MAX_FORK_DEPTH, cutoffs, fork_cutoff
from ml_dash.server.series.chunks import step_time_anchors, summary_extremes, to_series
from ml_dash.server.series.downsample import joined
from ml_dash.server.series.types import RunView
from ml_dash.server.storage.base import BatchResult, Storage
from ml_dash.server.storage.sql.protocol import (
    CALL,
    ROW,
    ROWS,
    RUN,
    Body,
    reads,
    writes,
)
from ml_dash.server.storage.sql.alerts import AlertStore
from ml_dash.server.storage.sql.gc import Purge
from ml_dash.server.storage.sql.media import MediaQueries
from ml_dash.server.storage.sql.query import ExperimentQueries
from ml_dash.server.storage.sql.runs import RunQueries
from ml_dash.server.storage.sql.tree import ExperimentTree

T = TypeVar("T")

# The experiment record (see docs/server.md): status and completed_at from the latest run, started_at from the
# earliest. Wrap it as ``SELECT * FROM (EXPERIMENT_SELECT) x WHERE ...`` to filter.
EXPERIMENT_SELECT = """
SELECT e.pk, e.id, e.namespace, e.workspace, e.directory, e.prefix, e.readme, e.created_at,
       COALESCE(e.hostname, r.hostname) AS hostname, CASE WHEN r.job_id IS NULL THEN r.status ELSE (JOB_STATUS) END
       AS status, e.params, e.tags, e.notes, e.deleted_at,
       (SELECT MIN(started_at) FROM runs WHERE experiment_pk = e.pk) AS started_at,
       CASE WHEN r.status != 'RUNNING' THEN r.ended_at END AS completed_at
FROM experiments e
LEFT JOIN runs r ON r.pk = (SELECT MAX(pk) FROM runs WHERE experiment_pk = e.pk)
"""
# A distributed job's status from its ranks' runs (docs/distributed.md): FAILED if one failed, else CRASHED if one
# crashed, else RUNNING while one runs, else COMPLETED.
_JOB_STATUS = """SELECT CASE WHEN SUM(CASE WHEN j.status = 'FAILED' THEN 1 ELSE 0 END) > 0 THEN 'FAILED'
       WHEN SUM(CASE WHEN j.status = 'CRASHED' THEN 1 ELSE 0 END) > 0 THEN 'CRASHED'
       WHEN SUM(CASE WHEN j.status = 'RUNNING' THEN 1 ELSE 0 END) > 0 THEN 'RUNNING' ELSE 'COMPLETED' END
       FROM runs j WHERE j.experiment_pk = e.pk AND j.job_id = r.job_id"""
EXPERIMENT_SELECT = EXPERIMENT_SELECT.replace("JOB_STATUS", _JOB_STATUS)
EXPERIMENT_FIELDS = ("pk", "id", "namespace", "workspace", "directory", "prefix", "readme", "created_at", "hostname",
                     "status", "params", "tags", "notes", "deleted_at", "started_at", "completed_at")
# A new run brings a soft-deleted experiment back (a script run again: docs/query.md), but only a run that started
# after the delete: one that started before and registers only now (its uploader was offline, or `ml-dash sync`
# ships it late) was part of what the user deleted, and its data joins the rest, hidden. Args: (pk, run start).
RESTORED_BY_RUN = "UPDATE experiments SET deleted_at = NULL WHERE pk = ? AND deleted_at IS NOT NULL AND deleted_at < ?"
_CHUNK_POINTS = "pk, steps, {values}, kinds, codec, run_pk"  # what series reads fetch of a chunk (see series.cache)
# An experiment's runs in start order with their branch steps, and its fork (parent id, step): a RunView's input.
_RUN_VIEW = ("SELECT r.pk, r.branch_step, p.id, e.fork_step, r.job_id FROM experiments e "
             "LEFT JOIN runs r ON r.experiment_pk = e.pk LEFT JOIN experiments p ON p.pk = e.fork_parent_pk "
             "WHERE e.id = ? ORDER BY r.started_at, r.pk")


# --- row conversions ---

def log_records(rows_newest_first: Sequence) -> list[dict[str, Any]]:
    """(timestamp, level, message, context JSON text) rows, newest first, as log dicts oldest first like a log file."""
    return [{"timestamp": ts, "level": lv, "message": msg, "context": orjson.loads(ctx) if ctx else None}
            for ts, lv, msg, ctx in reversed(rows_newest_first)]


def log_row(event: dict) -> tuple:
    """A validated log event as its stored (timestamp, level, message, context JSON text)."""
    context = event.get("context")
    return event.get("timestamp"), event.get("level"), event.get("message"), \
        None if context is None else orjson.dumps(context).decode()


def _other_rank(name: str) -> bool:
    """A series of a rank > 0 of a distributed job (``format.layout.rank_series``): not listed with rank 0's."""
    return name.startswith(RANK_SERIES_PREFIX) and series_rank(name)[0] > 0


def _ranged(sql: str, params: list, step_min: float | None, step_max: float | None) -> tuple[str, list]:
    """``sql`` limited to the chunks overlapping the step range (None: unbounded on that side)."""
    for clause, value in (("step_max >= ?", step_min), ("step_min <= ?", step_max)):
        if value is not None:
            sql, params = f"{sql} AND {clause}", [*params, float(value)]
    return sql, params


class SQLStorage(ExperimentQueries, RunQueries, MediaQueries, ExperimentTree, Purge, AlertStore, Storage):
    """The ``Storage`` methods both SQL backends share, as bodies (see the module doc)."""

    # dialect:
    LOCK_STREAM: str  # (experiment_pk, stream_id) → (acked,) or None for a new stream; locks it where a backend must
    LAST_METRICS: str  # experiment_pk → (name, *last-value columns) rows in name order, for ``_decode_last``
    SUMMARIES: str  # name_pk → (chunk pk, n, step_min, step_max, summary) rows
    VALUES: str  # metric_chunks' values column
    SORT_IN_SQL: bool  # chunk rows come back in pk order from an ORDER BY, else are sorted here

    def __init__(self, series_cache_mb: float = SERIES_CACHE_MB.default) -> None:
        self._series_cache = SeriesCache.sized(series_cache_mb)  # per process; checked against the database on every read

    @abc.abstractmethod
    async def _read(self, body: Body[T], snapshot: bool = False, light: bool = False) -> T: ...

    @abc.abstractmethod
    async def _write(self, body: Body[T]) -> T:
        """Run ``body`` as one write: SQLite in one transaction, PostgreSQL statement by statement (its write bodies
        are race-free upserts; ``apply_batch`` opens its own transaction)."""

    @staticmethod
    @abc.abstractmethod
    def _in(column: str, values: list, sql_type: str) -> tuple[str, list]:
        """``column`` is one of ``values`` (of PostgreSQL type ``sql_type``): (SQL condition, its args)."""

    @staticmethod
    @abc.abstractmethod
    def _decode_last(*columns: Any) -> Any:
        """A metric's last value from ``LAST_METRICS``' columns after the name."""

    def _experiment_pk(self, experiment_id: str) -> Body[int]:
        # Asked in the body's own snapshot every time, never remembered: gc (another process) may purge the
        # experiment, and SQLite then hands its integer key to the next experiment created.
        row = yield ROW, "SELECT pk FROM experiments WHERE id = ?", (experiment_id,)
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        return row[0]

    # experiments and runs
    def _experiments(self, where: str, args: Sequence, tail: str = "", count: bool = False) -> Body[Any]:
        """Experiment records (``params`` and ``tags`` decoded) where ``where`` holds of the record ``x``; their
        number with ``count``."""
        if count:
            return (yield ROW, f"SELECT COUNT(*) FROM ({EXPERIMENT_SELECT}) x WHERE {where}", args)[0]
        rows = yield ROWS, f"SELECT * FROM ({EXPERIMENT_SELECT}) x WHERE {where} {tail}", args
        found = []
        for row in rows:
            record = dict(zip(EXPERIMENT_FIELDS, row))
            record["params"] = orjson.loads(record["params"]) if record["params"] else {}
            record["tags"] = orjson.loads(record["tags"]) if record["tags"] else []
            found.append(record)
        return found

    @reads(light=True)
    def get_experiment(self, experiment_id):
        found = yield from self._experiments("id = ?", (experiment_id,))
        if not found:
            raise NotFound(f"no experiment {experiment_id!r}")
        return found[0]

    @reads
    def list_experiments(self, namespaces, workspace, status, limit, offset):
        # Soft-deleted experiments are listed by experiment_page only.
        clauses, args = self._scope(namespaces, False, workspace=workspace, status=status)
        return (yield from self._experiments(" AND ".join(clauses), (*args, limit, offset),
                                             "ORDER BY created_at DESC, pk DESC LIMIT ? OFFSET ?"))

    @reads
    def list_namespaces(self):
        return [r[0] for r in (yield ROWS, "SELECT DISTINCT namespace FROM experiments ORDER BY 1", ())]

    @reads
    def list_workspaces(self, namespace):
        sql = "SELECT DISTINCT workspace FROM experiments WHERE namespace = ? ORDER BY 1"
        return [r[0] for r in (yield ROWS, sql, (namespace,))]

    # ingest: the stream-offset protocol; a backend's apply_batch runs these two bodies around its own row writer
    def _batch_target(self, experiment_id: str, run_id: str | None) -> Body[tuple[int, int | None]]:
        """A batch's (experiment pk, run pk or None); NotFound for an unknown experiment, or a run not in it."""
        if run_id is None:
            return (yield from self._experiment_pk(experiment_id)), None
        row = yield ROW, ("SELECT e.pk, r.pk FROM experiments e LEFT JOIN runs r ON r.experiment_pk = e.pk "
                          "AND r.id = ? WHERE e.id = ?"), (run_id, experiment_id)  # one query, as two were
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        if row[1] is None:
            raise NotFound(f"no run {run_id!r} in experiment {experiment_id!r}")
        return row[0], row[1]

    def _batch(self, experiment_pk: int, stream_id: str, start: int, end: int,
               write: Callable[[Any], Any]) -> Body[BatchResult]:
        """Inside the batch's transaction: check ``start`` against the stream's acked offset, store the events
        (``write(conn)`` → how many) and move the offset to ``end``. Replays (``end <= acked``) store nothing."""
        row = yield ROW, self.LOCK_STREAM, (experiment_pk, stream_id)
        acked = 0 if row is None else row[0]
        if start != acked:
            if end <= acked:
                return BatchResult(acked=acked, stored=0, duplicate=True)
            raise StreamConflict(f"batch starts at {start} but stream {stream_id!r} is acked up to {acked}", acked)
        stored = yield CALL, write
        # The offset moves only from the value we read: the primary key and this WHERE make a second writer
        # (another process or worker) fail instead of storing the same batch twice.
        if row is None:
            yield RUN, "INSERT INTO streams (experiment_pk, stream_id, acked) VALUES (?, ?, ?)", \
                (experiment_pk, stream_id, end)
        elif (yield RUN, "UPDATE streams SET acked = ? WHERE experiment_pk = ? AND stream_id = ? AND acked = ?",
              (end, experiment_pk, stream_id, start)) != 1:
            raise StreamConflict(f"stream {stream_id!r} moved during the batch", acked)
        return BatchResult(acked=end, stored=stored)

    @writes
    def set_environment(self, experiment_id, environment):
        pk = yield from self._experiment_pk(experiment_id)
        yield RUN, ("INSERT INTO experiment_environments (experiment_pk, environment, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (experiment_pk) DO UPDATE SET environment = excluded.environment, "
                    "updated_at = excluded.updated_at"), (pk, orjson.dumps(environment).decode(), time.time())

    @reads
    def environment(self, experiment_id):
        pk = yield from self._experiment_pk(experiment_id)
        row = yield ROW, "SELECT environment FROM experiment_environments WHERE experiment_pk = ?", (pk,)
        return None if row is None else orjson.loads(row[0])

    @reads(light=True)
    def stream_offsets(self, experiment_id):
        pk = yield from self._experiment_pk(experiment_id)
        return {r[0]: r[1] for r in (yield ROWS, "SELECT stream_id, acked FROM streams WHERE experiment_pk = ?",
                                     (pk,))}

    # reads
    @reads
    def parameter_ops(self, experiment_id):
        pk = yield from self._experiment_pk(experiment_id)
        rows = yield ROWS, "SELECT record FROM parameters WHERE experiment_pk = ? ORDER BY pk", (pk,)
        return [orjson.loads(r[0]) for r in rows]

    @reads
    def logs(self, experiment_id, level, limit):
        pk = yield from self._experiment_pk(experiment_id)
        sql, args = "SELECT timestamp, level, message, context FROM logs WHERE experiment_pk = ?", [pk]
        if level is not None:
            sql, args = sql + " AND level = ?", [*args, level]
        # The newest `limit` entries, returned oldest first like a log file.
        sql += " ORDER BY pk DESC"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        return log_records((yield ROWS, sql, args))

    @reads
    def metric_names(self, experiment_id):
        pk = yield from self._experiment_pk(experiment_id)
        names: set[str] = set()
        for _ in range(MAX_FORK_DEPTH + 1):  # a fork's history holds its ancestors' series too
            names.update(r[0] for r in (yield ROWS, "SELECT name FROM metric_names WHERE experiment_pk = ?", (pk,))
                         if not _other_rank(r[0]))
            row = yield ROW, "SELECT fork_parent_pk FROM experiments WHERE pk = ?", (pk,)
            if row is None or row[0] is None:
                break
            pk = row[0]
        return sorted(names)

    @reads
    def last_metrics(self, experiment_id):
        pk = yield from self._experiment_pk(experiment_id)
        return {row[0]: self._decode_last(*row[1:]) for row in (yield ROWS, self.LAST_METRICS, (pk,))
                if not _other_rank(row[0])}

    def _run_view(self, experiment_id: str, superseded: bool) -> Body[tuple[RunView, tuple[str, float] | None]]:
        """The experiment's ``RunView`` (format.branches' rule over its runs) and its fork: (parent id, the parent
        history's cutoff), or None."""
        rows = yield ROWS, _RUN_VIEW, (experiment_id,)
        if not rows:
            raise NotFound(f"no experiment {experiment_id!r}")
        # the ranks of one distributed job are one job: they never supersede each other (format.branches)
        runs = [(None, None, None)] + [(pk, job or pk, branch) for pk, branch, _p, _s, job in rows if pk is not None]
        cut = cutoffs(runs)
        view = RunView(tuple((pk, c) for pk, c in cut.items() if pk is not None), cut[None], superseded)
        parent, fork_step = rows[0][2], rows[0][3]
        if parent is None or fork_step is None:
            return view, None
        return view, (parent, fork_cutoff(fork_step, [branch for _r, _j, branch in runs]))

    @reads(snapshot=True)
    def metric_summary(self, experiment_id):
        pk = yield from self._experiment_pk(experiment_id)
        last = {row[0]: self._decode_last(*row[1:]) for row in (yield ROWS, self.LAST_METRICS, (pk,))}
        out = []
        for name_pk, name in (yield ROWS, "SELECT pk, name FROM metric_names WHERE experiment_pk = ? ORDER BY name",
                              (pk,)):
            if _other_rank(name):
                continue  # a rank > 0's series: read with a rank (docs/distributed.md)
            # One SUMMARY_DTYPE record per 512 points: count, min and max of a 10M-point series from ~20k records.
            rows = yield ROWS, self.SUMMARIES, (name_pk,)
            missing = [row[0] for row in rows if not row[4]]  # chunks stored before summaries existed
            extra = []
            if missing:
                clause, params = self._in("pk", missing, "int8")
                extra = yield ROWS, f"SELECT {self.VALUES}, codec FROM metric_chunks WHERE {clause}", params
            out.append({"name": name, "last": last.get(name),
                        **summary_extremes([row[4] for row in rows if row[4]], [(row[0], row[1]) for row in extra]),
                        "count": int(sum(row[1] for row in rows))})
        return out


    @reads(snapshot=True)
    def metric_series(self, experiment_id, name, step_min, step_max, max_points=None, superseded=False):
        pieces = yield from self._history(experiment_id, name, step_min, step_max, max_points, superseded, 0)
        return pieces[0] if len(pieces) == 1 else joined(pieces, max_points)  # joined once, however long the chain

    def _history(self, experiment_id: str, name: str, step_min: float | None, step_max: float | None,
                 max_points: int | None, superseded: bool, depth: int) -> Body[list]:
        """One series of an experiment as its history shows it, in pieces: its fork parent's history up to the fork
        (read the same way, without copying a point), then its own runs' points clipped by its ``RunView``."""
        try:
            view, fork = yield from self._run_view(experiment_id, superseded)
        except NotFound:
            if self._series_cache is not None:
                self._series_cache.discard((experiment_id, name))  # purged: its entry must not outlive it
            raise
        own = yield from self._series_read(experiment_id, name, step_min, step_max, max_points, view)
        if fork is None or superseded or depth >= MAX_FORK_DEPTH:
            return [own]
        parent, cutoff = fork
        below = math.nextafter(cutoff, -math.inf)  # the parent's last step this history takes
        if step_min is not None and step_min > below:
            return [own]
        limit = below if step_max is None else min(step_max, below)
        if max_points is not None:  # a chart read: the parent's range is read from its block summaries
            inherited = yield from self._history(parent, name, step_min, limit, max_points, False, depth + 1)
        else:  # read as the parent itself is read (so from its cached series), then cut at the fork
            inherited = yield from self._history(parent, name, step_min, step_max, None, False, depth + 1)
            inherited = [None if p is None else to_series(p.steps, p.values, p.kinds, step_min, limit, ordered=True)
                         for p in inherited]
        return [*inherited, own]

    def _series_read(self, experiment_id: str, name: str, step_min: float | None, step_max: float | None,
                     max_points: int | None, view: RunView) -> Body[Any]:
        key = (experiment_id, name)
        reader = read_series(self._series_cache, key, step_min, step_max, max_points, view)
        reply = None
        while True:
            try:
                request = reader.send(reply)
            except StopIteration as stop:
                return stop.value
            try:
                reply = yield from self._series_query(experiment_id, name, *request)
            except NotFound:
                if self._series_cache is not None:
                    self._series_cache.discard(key)  # purged: its entry must not outlive it
                raise

    def _series_query(self, experiment_id: str, name: str, what: str, *args: Any) -> Body[Any]:
        """Answer one query of ``series.cache.read_series``."""
        points = f"SELECT {_CHUNK_POINTS.format(values=self.VALUES)} FROM metric_chunks WHERE"
        if what == STATE:
            # The experiment by id in the same query (and snapshot) as its series, in place of a lookup by pk.
            row = yield ROW, ("SELECT m.pk, m.ordered, m.tail_pk FROM experiments e LEFT JOIN metric_names m "
                              "ON m.experiment_pk = e.pk AND m.name = ? WHERE e.id = ?"), (name, experiment_id)
            if row is None:
                raise NotFound(f"no experiment {experiment_id!r}")
            return None if row[0] is None else tuple(row)
        if what == EXISTS:
            return (yield ROW, "SELECT 1 FROM metric_chunks WHERE pk = ?", args) is not None
        if what == POINTS:
            clause, params = self._in("pk", list(args[0]), "int8")
            return (yield from self._in_pk_order(f"{points} {clause}", params))
        if what == SUMMARIES:
            name_pk, step_min, step_max = args
            return (yield from self._in_pk_order(*_ranged(self.SUMMARIES, [name_pk], step_min, step_max)))
        name_pk, after, step_min, step_max = args
        # Only the chunks overlapping the step range (an index on name_pk, step_max, step_min in SQLite), or newer
        # than what the cache holds.
        sql, params = f"{points} name_pk = ?", [name_pk]
        if after is not None:
            sql, params = f"{sql} AND pk > ?", [*params, after]
        return (yield from self._in_pk_order(*_ranged(sql, params, step_min, step_max)))

    def _in_pk_order(self, sql: str, params: Sequence) -> Body[list]:
        if self.SORT_IN_SQL:
            return (yield ROWS, f"{sql} ORDER BY pk", params)
        # Put back in stored order here: an ORDER BY would make SQLite copy every BLOB through its sorter first.
        return sorted((yield ROWS, sql, params))

    @reads(snapshot=True)
    def metric_step_times(self, experiment_id, name, max_points):
        found = yield ROW, ("SELECT m.pk, m.ordered FROM experiments e LEFT JOIN metric_names m "
                            "ON m.experiment_pk = e.pk AND m.name = ? WHERE e.id = ?"), (name, experiment_id)
        if found is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        if found[0] is None:
            return None
        rows = yield from self._in_pk_order("SELECT pk, steps, timestamps, codec FROM metric_chunks WHERE name_pk = ?",
                                            [found[0]])
        return step_time_anchors(((row[1], row[2], row[3]) for row in rows), bool(found[1]), max_points)

    # files
    @writes
    def put_file(self, experiment_id, path, size, sha256):
        pk = yield from self._experiment_pk(experiment_id)
        yield RUN, ("INSERT INTO files (experiment_pk, path, size, sha256, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (experiment_pk, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, "
                    "updated_at = excluded.updated_at"), (pk, path, size, sha256, time.time())

    async def get_file(self, experiment_id, path):
        found = [f for f in await self.list_files(experiment_id, path) if f["path"] == path]
        if not found:
            raise NotFound(f"no file {path!r} in experiment {experiment_id!r}")
        return found[0]

    @reads
    def list_files(self, experiment_id, path: str | None = None):
        pk = yield from self._experiment_pk(experiment_id)
        sql, args = "SELECT path, size, sha256 FROM files WHERE experiment_pk = ?", [pk]
        if path is not None:
            sql, args = sql + " AND path = ?", [*args, path]
        return [{"path": p, "size": s, "sha256": h} for p, s, h in (yield ROWS, sql + " ORDER BY path", args)]
