"""The runs of an experiment as segments of its history: registration fields, status, heartbeats and the CRASHED
verdict, the console lines, branch steps (docs/branches.md) and forks (``lineage``), as ``protocol`` bodies that
``SQLStorage`` mixes in."""
from __future__ import annotations

import math
import time

import orjson

from ml_dash.format.branches import MAX_FORK_DEPTH, cutoffs
from ml_dash.server.errors import BadRequest, NotFound
from ml_dash.server.storage.sql.protocol import ROW, ROWS, RUN, Body, reads, writes

RUN_FIELDS = ("id", "status", "hostname", "started_at", "ended_at", "error", "job_id", "rank", "world_size",
              "heartbeat_at", "branch_step")  # branch_step last: list_runs reads it as row[-1]
CONSOLE_FIELDS = ("pk", "rank", "run_id", "timestamp", "stream", "line")


class RunQueries:
    """Run-level reads and edits; ``_experiment_pk`` comes from ``SQLStorage``."""

    @reads(light=True)
    def get_run(self, run_id):
        row = yield ROW, (f"SELECT {', '.join('r.' + f for f in RUN_FIELDS)}, e.id, e.namespace "
                          "FROM runs r JOIN experiments e ON e.pk = r.experiment_pk WHERE r.id = ?"), (run_id,)
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return dict(zip((*RUN_FIELDS, "experiment_id", "namespace"), row))

    @writes
    def update_run(self, run_id, status, error, ended_at):
        # A run that is no longer RUNNING keeps (or gets) an end time even if the client did not send one.
        end = ended_at if ended_at is not None or status == "RUNNING" else time.time()
        if not (yield RUN, "UPDATE runs SET status = ?, error = COALESCE(?, error), ended_at = ? WHERE id = ?",
                (status, error, end, run_id)):
            raise NotFound(f"no run {run_id!r}")

    def _set_run_job(self, run_id: str, job: dict | None) -> Body[None]:
        """A new run's job fields (``Storage.create_run``'s ``job``); a client that sends heartbeats starts its clock."""
        if job:
            yield RUN, "UPDATE runs SET job_id = ?, rank = ?, world_size = ?, heartbeat_at = ? WHERE id = ?", \
                (job.get("job_id"), job.get("rank"), job.get("world_size"),
                 time.time() if job.get("heartbeat") else None, run_id)

    @writes
    def heartbeat(self, run_id, now):
        # A heartbeat after a CRASHED verdict (a network outage longer than the timeout): the run is alive after all.
        yield RUN, ("UPDATE runs SET heartbeat_at = ?, status = CASE WHEN status = 'CRASHED' THEN 'RUNNING' "
                    "ELSE status END, ended_at = CASE WHEN status = 'CRASHED' THEN NULL ELSE ended_at END "
                    "WHERE id = ?"), (now, run_id)
        row = yield ROW, "SELECT status FROM runs WHERE id = ?", (run_id,)
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return row[0]

    @writes
    def mark_crashed(self, now, after):
        # One statement, idempotent: several workers running it at once mark each run once, with the same values.
        return (yield RUN, ("UPDATE runs SET status = 'CRASHED', ended_at = heartbeat_at, error = ? "
                            "WHERE status = 'RUNNING' AND heartbeat_at IS NOT NULL AND heartbeat_at < ?"),
                (f"no heartbeat from the client for {after:g}s (killed, or its host or network went away)",
                 now - after))

    @reads
    def console(self, experiment_id, rank, stream, search, after, limit):
        pk = yield from self._experiment_pk(experiment_id)
        sql, args = ("SELECT c.pk, c.rank, r.id, c.timestamp, c.stream, c.line FROM console c "
                     "LEFT JOIN runs r ON r.pk = c.run_pk WHERE c.experiment_pk = ?"), [pk]
        for clause, value in (("c.rank = ?", rank), ("c.stream = ?", stream), ("c.pk > ?", after)):
            if value is not None:
                sql, args = f"{sql} AND {clause}", [*args, value]
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            sql, args = f"{sql} AND c.line LIKE ? ESCAPE '\\'", [*args, f"%{escaped}%"]
        rows = yield ROWS, f"{sql} ORDER BY c.pk DESC LIMIT ?", [*args, limit]
        return [dict(zip(CONSOLE_FIELDS, row)) for row in reversed(rows)]

    @reads
    def list_runs(self, experiment_id):
        # In start order, each with where its points stop showing (docs/branches.md): the runs as segments of one
        # history.
        pk = yield from self._experiment_pk(experiment_id)
        rows = yield ROWS, (f"SELECT pk, {', '.join(RUN_FIELDS)} FROM runs WHERE experiment_pk = ? "
                            "ORDER BY started_at, pk"), (pk,)
        job = 1 + RUN_FIELDS.index("job_id")
        cut = cutoffs([(row[0], row[job] or row[0], row[-1]) for row in rows])
        return [dict(zip(RUN_FIELDS, row[1:]), superseded_from=None if cut[row[0]] == math.inf else cut[row[0]])
                for row in rows]

    @writes
    def set_run_branch(self, run_id, branch_step):
        """The step from which run ``run_id`` supersedes earlier runs' points (its mark, sent by the uploader). Set
        once: a replay of the same mark changes nothing."""
        if not (yield RUN, "UPDATE runs SET branch_step = ? WHERE id = ? AND (branch_step IS NULL OR branch_step = ?)",
                (float(branch_step), run_id, float(branch_step))):
            row = yield ROW, "SELECT branch_step FROM runs WHERE id = ?", (run_id,)
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            raise BadRequest(f"run {run_id!r} already branches at step {row[0]:g}, not {branch_step}")

    @writes
    def set_fork(self, experiment_id, parent_id, fork_step):
        """Record that ``experiment_id`` starts from ``parent_id``'s history up to ``fork_step``, and take the
        parent's parameters as its own first ones (no metric point is copied). Set once; the same again is a no-op."""
        pk = yield from self._experiment_pk(experiment_id)
        # The parent by id or by its directory/prefix path, in the fork's own namespace and workspace (the token
        # that may write the fork may read its parent).
        found = yield ROW, ("SELECT p.pk FROM experiments e JOIN experiments p ON p.namespace = e.namespace AND "
                            "p.workspace = e.workspace AND p.deleted_at IS NULL AND (p.id = ? OR (CASE WHEN "
                            "p.directory = '' THEN p.prefix ELSE p.directory || '/' || p.prefix END) = ?) "
                            "WHERE e.pk = ? ORDER BY p.pk LIMIT 1"), (parent_id, parent_id, pk)
        if found is None:
            raise NotFound(f"no experiment {parent_id!r} to fork from in the fork's namespace and workspace")
        parent = found[0]
        row = yield ROW, "SELECT fork_parent_pk, fork_step FROM experiments WHERE pk = ?", (pk,)
        if row[0] is not None:
            if (row[0], row[1]) != (parent, float(fork_step)):
                raise BadRequest(f"experiment {experiment_id!r} is already a fork of another experiment or step")
            return
        if parent == pk:
            raise BadRequest("an experiment cannot be forked from itself")
        ancestor, depth = parent, 0
        while ancestor is not None and depth <= MAX_FORK_DEPTH:  # a fork of its own descendant would be a cycle
            if ancestor == pk:
                raise BadRequest(f"experiment {parent_id!r} descends from {experiment_id!r}: a fork cannot be a cycle")
            ancestor = (yield ROW, "SELECT fork_parent_pk FROM experiments WHERE pk = ?", (ancestor,))[0]
            depth += 1
        yield RUN, "UPDATE experiments SET fork_parent_pk = ?, fork_step = ? WHERE pk = ?", \
            (parent, float(fork_step), pk)
        params = yield ROW, "SELECT params FROM experiments WHERE pk = ?", (parent,)
        own = yield ROW, "SELECT 1 FROM parameters WHERE experiment_pk = ? LIMIT 1", (pk,)
        if own is None and params[0] and params[0] != "{}":  # the base, only before any parameter of its own
            yield RUN, "INSERT INTO parameters (experiment_pk, run_pk, record) VALUES (?, NULL, ?)", \
                (pk, orjson.dumps({"operation": "set", "data": orjson.loads(params[0])}).decode())
            yield RUN, "UPDATE experiments SET params = ? WHERE pk = ?", (params[0], pk)

    @reads
    def lineage(self, experiment_id):
        """``{"parent": {id, ..., fork_step} | None, "children": [{id, ..., fork_step}]}``: the forks around it."""
        pk = yield from self._experiment_pk(experiment_id)
        row = yield ROW, ("SELECT p.id, p.namespace, p.workspace, p.directory, p.prefix, e.fork_step "
                          "FROM experiments e JOIN experiments p ON p.pk = e.fork_parent_pk WHERE e.pk = ?"), (pk,)
        fields = ("id", "namespace", "workspace", "directory", "prefix", "fork_step")
        rows = yield ROWS, ("SELECT id, namespace, workspace, directory, prefix, fork_step FROM experiments "
                            "WHERE fork_parent_pk = ? AND deleted_at IS NULL ORDER BY created_at, pk"), (pk,)
        return {"parent": None if row is None else dict(zip(fields, row)),
                "children": [dict(zip(fields, r)) for r in rows]}

