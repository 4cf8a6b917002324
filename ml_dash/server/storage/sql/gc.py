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

from ml_dash.server.storage.sql.protocol import ROWS, RUN, reads, writes

_OF = "experiment_pk = ?"
_NAMES = "name_pk IN (SELECT pk FROM metric_names WHERE experiment_pk = ?)"


def _batched(table: str, key: str, where: str) -> str:
    return f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {where} LIMIT ?)"


# (table, its batched delete) in dependency order; a backend puts its own extra tables first (SQLite's summaries).
PURGE_STEPS = [
    ("logs", _batched("logs", "pk", _OF)),
    ("parameters", _batched("parameters", "pk", _OF)),
    ("metric_chunks", _batched("metric_chunks", "pk", _NAMES)),
    ("metric_names", _batched("metric_names", "pk", _OF)),
    ("runs", _batched("runs", "pk", _OF)),
]


class Purge:
    """Mixed into ``SQLStorage``."""

    PURGE_FIRST: list[tuple[str, str]] = []  # backend tables to empty before PURGE_STEPS

    @reads
    def deleted_experiments(self, before: float | None = None, limit: int = 100):
        """(pk, id, namespace/workspace/prefix) of soft-deleted experiments, deleted before ``before``."""
        rows = yield ROWS, ("SELECT pk, id, namespace, workspace, directory, prefix FROM experiments WHERE "
                            "deleted_at IS NOT NULL AND deleted_at <= ? ORDER BY pk LIMIT ?"), \
            (time.time() if before is None else before, limit)
        return [(r[0], r[1], "/".join(p for p in r[2:] if p)) for r in rows]

    @writes
    def _purge_batch(self, sql, experiment_pk, batch):
        return (yield RUN, sql, (experiment_pk, batch))

    @writes
    def _purge_files_batch(self, experiment_pk, batch):
        """Delete up to ``batch`` file records; return (how many, the sha256s no file record names any more)."""
        rows = yield ROWS, "SELECT path, sha256 FROM files WHERE experiment_pk = ? ORDER BY path LIMIT ?", \
            (experiment_pk, batch)
        if not rows:
            return 0, []
        clause, args = self._in("path", [r[0] for r in rows], "text")
        yield RUN, f"DELETE FROM files WHERE experiment_pk = ? AND {clause}", (experiment_pk, *args)
        shas = sorted({r[1] for r in rows})
        clause, args = self._in("sha256", shas, "text")
        named = {r[0] for r in (yield ROWS, f"SELECT DISTINCT sha256 FROM files WHERE {clause}", args)}
        return len(rows), [sha for sha in shas if sha not in named]

    @reads
    def unnamed_blobs(self, shas):
        """Those of ``shas`` that no file record names."""
        if not shas:
            return []
        clause, args = self._in("sha256", sorted(set(shas)), "text")
        named = {r[0] for r in (yield ROWS, f"SELECT DISTINCT sha256 FROM files WHERE {clause}", args)}
        return [sha for sha in sorted(set(shas)) if sha not in named]

    @writes
    def _purge_experiment_row(self, experiment_pk):
        for table in ("streams", "experiment_environments"):  # a few rows each
            yield RUN, f"DELETE FROM {table} WHERE experiment_pk = ?", (experiment_pk,)
        return (yield RUN, "DELETE FROM experiments WHERE pk = ? AND deleted_at IS NOT NULL", (experiment_pk,))

    async def purge_deleted(self, before: float | None = None, batch: int = 10_000,
                            drop_blob: Callable[[str], Awaitable[Any]] | None = None,
                            echo: Callable[[str], None] = lambda line: None) -> dict[str, int]:
        """Purge every experiment soft-deleted before ``before`` (default now): rows per table removed, and
        ``blobs``, the number of unreferenced blobs passed to ``drop_blob``."""
        counts: dict[str, int] = {"experiments": 0, "files": 0, "blobs": 0}
        while True:
            found = await self.deleted_experiments(before, 100)
            if not found:
                return counts
            for pk, experiment_id, where in found:
                for table, sql in [*self.PURGE_FIRST, *PURGE_STEPS]:
                    while True:
                        removed = await self._purge_batch(sql, pk, batch)
                        counts[table] = counts.get(table, 0) + removed
                        if removed < batch:
                            break
                while True:
                    removed, orphans = await self._purge_files_batch(pk, batch)
                    counts["files"] += removed
                    for sha in orphans:
                        if drop_blob is not None:
                            await drop_blob(sha)
                        counts["blobs"] += 1
                    if removed < batch:
                        break
                counts["experiments"] += await self._purge_experiment_row(pk)
                self._experiment_pks.pop(experiment_id, None)
                echo(f"purged {where} ({experiment_id})")
