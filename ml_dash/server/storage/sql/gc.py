"""``ml-dash server gc``: purge soft-deleted experiments, in bounded batches both backends run as ``protocol`` bodies.

One experiment at a time, each table in batches of ``batch`` rows, each batch its own short transaction: memory stays
bounded by the batch (no row is ever read into Python except a batch of file records), and ingest for other
experiments is never held up for long. The experiment's row goes last, so an interrupted purge resumes where it
stopped at the next run. File records go in batches too; a blob no other file record names is handed to the caller
to delete from the blob store.
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from ml_dash.server.storage.sql.protocol import ROW, ROWS, RUN, reads

_OF = "experiment_pk = ?"
_NAMES = "name_pk IN (SELECT pk FROM metric_names WHERE experiment_pk = ?)"

# (table, key, which rows) in dependency order; a backend's own tables (SQLite's summaries) go right after the chunks.
# A client may still upload to the deleted experiment while gc runs, so a name goes only once no chunk names it;
# whatever arrived behind a step is taken by the next pass (``_purge_experiment_row`` checks).
PURGE_STEPS = [
    ("media", "pk", _OF),  # its blobs stay until --sweep-blobs finds that nothing names them
    ("media_histograms", "pk", _OF),
    ("logs", "pk", _OF),
    ("console", "pk", _OF),
    ("parameters", "pk", _OF),
    ("metric_chunks", "pk", _NAMES),
    ("metric_names", "pk", f"{_OF} AND NOT EXISTS (SELECT 1 FROM metric_chunks c WHERE c.name_pk = metric_names.pk)"),
    ("runs", "pk", _OF),
]
PASSES = 3  # a client still uploading to the deleted experiment can leave rows behind a pass; then gc goes again


class Purge:
    """Mixed into ``SQLStorage``."""

    PURGE_WITH_CHUNKS: list[tuple[str, str, str]] = []  # backend tables emptied right after metric_chunks
    LOCK_ROW = ""  # what makes the gate's SELECT lock the experiment row until the batch commits (PostgreSQL)
    RACED: tuple[type[BaseException], ...] = ()  # a batch lost to a concurrent upload (PostgreSQL): gc goes again

    def _steps(self) -> list[tuple[str, str, str]]:
        chunks = [step[0] for step in PURGE_STEPS].index("metric_chunks") + 1
        return [*PURGE_STEPS[:chunks], *self.PURGE_WITH_CHUNKS, *PURGE_STEPS[chunks:]]

    async def _write_atomic(self, body):
        """Run a write body in one transaction (SQLite's writes always are; PostgreSQL overrides this)."""
        return await self._write(body)

    @reads
    def deleted_experiments(self, before: float | None = None, limit: int = 100, after: int = 0):
        """(pk, id, namespace/workspace/prefix) of soft-deleted experiments deleted before ``before``, with a pk
        above ``after`` (gc pages by pk, so one it leaves is not found again)."""
        rows = yield ROWS, ("SELECT pk, id, namespace, workspace, directory, prefix FROM experiments WHERE "
                            "deleted_at IS NOT NULL AND deleted_at <= ? AND pk > ? ORDER BY pk LIMIT ?"), \
            (time.time() if before is None else before, after, limit)
        return [(r[0], r[1], "/".join(p for p in r[2:] if p)) for r in rows]

    def _gate(self, experiment_pk: int, before: float):
        """Whether the experiment is still deleted (before ``before``), asked in the batch's own transaction: a
        restore (or a new run) committed before it stops the purge there. PostgreSQL also locks the row, so a
        restore arriving meanwhile waits for this batch and the next batch sees it."""
        return (yield ROW, ("SELECT 1 FROM experiments WHERE pk = ? AND deleted_at IS NOT NULL AND deleted_at <= ?"
                            + self.LOCK_ROW), (experiment_pk, before)) is not None

    def _purge_batch(self, sql, experiment_pk, before, batch):
        """Up to ``batch`` rows of one table; None if the experiment is no longer deleted."""
        if not (yield from self._gate(experiment_pk, before)):
            return None
        return (yield RUN, sql, (experiment_pk, batch))

    def _purge_files_batch(self, experiment_pk, before, batch):
        """Delete up to ``batch`` file records; (how many, the sha256s no file record names any more), or None if
        the experiment is no longer deleted."""
        if not (yield from self._gate(experiment_pk, before)):
            return None
        rows = yield ROWS, "SELECT path, sha256 FROM files WHERE experiment_pk = ? ORDER BY path LIMIT ?", \
            (experiment_pk, batch)
        if not rows:
            return 0, []
        clause, args = self._in("path", [r[0] for r in rows], "text")
        yield RUN, f"DELETE FROM files WHERE experiment_pk = ? AND {clause}", (experiment_pk, *args)
        shas = sorted({r[1] for r in rows})
        named = yield from self._named(shas)
        return len(rows), [sha for sha in shas if sha not in named]

    def _named(self, shas):
        """Those of ``shas`` that a file record or a media item (its bytes or its thumbnail) names."""
        named = set()
        for table, column in (("files", "sha256"), ("media", "sha256"), ("media", "thumb_sha256")):
            clause, args = self._in(column, shas, "text")
            named |= {r[0] for r in (yield ROWS, f"SELECT DISTINCT {column} FROM {table} WHERE {clause}", args)}
        return named

    @reads
    def unnamed_blobs(self, shas):
        """Those of ``shas`` that no file record or media item names."""
        if not shas:
            return []
        named = yield from self._named(sorted(set(shas)))
        return [sha for sha in sorted(set(shas)) if sha not in named]

    def _purge_experiment_row(self, experiment_pk, before):
        """The experiment row with its stream offsets and environment: "gone" once done, "live" if it is no longer
        deleted, "again" if rows were written to it since its tables were emptied (a client still uploading)."""
        if not (yield from self._gate(experiment_pk, before)):
            return "live"
        for table, key, where in [*self._steps(), ("files", "path", _OF)]:
            if (yield ROW, f"SELECT 1 FROM {table} WHERE {where} LIMIT 1", (experiment_pk,)) is not None:
                return "again"
        for table in ("streams", "experiment_environments"):  # a few rows each
            yield RUN, f"DELETE FROM {table} WHERE experiment_pk = ?", (experiment_pk,)
        yield RUN, "DELETE FROM experiments WHERE pk = ?", (experiment_pk,)
        return "gone"

    async def _purge_one(self, pk: int, before: float, batch: int, counts: dict[str, int],
                         drop_blob: Callable[[str], Awaitable[Any]] | None,
                         after_batch: Callable[[str], Awaitable[Any]] | None) -> str:
        """Empty one experiment's tables batch by batch, then remove its row; "gone", "live" or "again"."""
        for table, key, where in self._steps():
            sql = f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {where} LIMIT ?)"
            while True:
                removed = await self._write_atomic(self._purge_batch(sql, pk, before, batch))
                if removed is None:
                    return "live"
                counts[table] = counts.get(table, 0) + removed
                if after_batch is not None:
                    await after_batch(table)
                if removed < batch:
                    break
        while True:
            done = await self._write_atomic(self._purge_files_batch(pk, before, batch))
            if done is None:
                return "live"
            removed, orphans = done
            counts["files"] += removed
            for sha in orphans:
                if drop_blob is not None:
                    await drop_blob(sha)
                counts["blobs"] += 1
            if after_batch is not None:
                await after_batch("files")
            if removed < batch:
                break
        return await self._write_atomic(self._purge_experiment_row(pk, before))

    async def purge_deleted(self, before: float | None = None, batch: int = 10_000,
                            drop_blob: Callable[[str], Awaitable[Any]] | None = None,
                            echo: Callable[[str], None] = lambda line: None,
                            after_batch: Callable[[str], Awaitable[Any]] | None = None) -> dict[str, int]:
        """Purge every experiment soft-deleted before ``before`` (default now): rows per table removed, and
        ``blobs``, the number of unreferenced blobs passed to ``drop_blob``. ``after_batch(table)`` is awaited after
        each committed batch (a test restores the experiment there)."""
        before = time.time() if before is None else before
        counts = {"experiments": 0, **{step[0]: 0 for step in self._steps()}, "files": 0,
                  "blobs": 0}
        after = 0
        while True:
            found = await self.deleted_experiments(before, 100, after)
            if not found:
                return counts
            for pk, experiment_id, where in found:
                after = pk
                for _ in range(PASSES):
                    try:
                        outcome = await self._purge_one(pk, before, batch, counts, drop_blob, after_batch)
                    except self.RACED:
                        outcome = "again"
                    if outcome != "again":
                        break
                if outcome == "gone":
                    counts["experiments"] += 1
                    echo(f"purged {where} ({experiment_id})")
                elif outcome == "live":
                    echo(f"kept {where} ({experiment_id}): restored while gc ran; what gc removed before is gone")
                else:
                    echo(f"left {where} ({experiment_id}) for the next gc: still receiving data")
