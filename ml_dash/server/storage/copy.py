"""``ml-dash server copy``: move everything an SQLite server stores into an empty PostgreSQL database.

The source is read in one read transaction (a consistent snapshot); the target is opened like the server opens it
(``PostgresStorage``: schema created or migrated), then every table is written with ``COPY`` in batches inside ONE
transaction, keeping primary keys so every reference (and every client's stream offset) stays valid. A failure
leaves the target as empty as it was. Afterwards the sequences continue past the copied keys.

Where the schemas differ the rows are converted: ``metric_names.last_value`` (untyped in SQLite) becomes
``last_num``/``last_int``, ``ordered`` becomes a boolean, chunk ``values`` is ``vals``, and the block summaries move
from SQLite's ``metric_summaries`` table back into ``metric_chunks.summary``. Chunk BLOBs are copied as stored, each
with its ``codec`` (old uncompressed chunks stay uncompressed, compressed ones are not re-encoded).
``last_step``/``last_timestamp`` (SQLite only, never read) are dropped. File bytes are not in the database: they stay in the blob store.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
import urllib.parse
from typing import Callable, Iterator

from ml_dash.server.series.chunks import COLUMNS, DTYPES, summarize
from ml_dash.server.series.codec import decode_column
from ml_dash.server.storage.sqlite.metrics import decode_value
from ml_dash.server.storage.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS

BATCH_ROWS = 10_000
BATCH_BYTES = 64 << 20  # metric chunks are up to megabytes each: a batch also ends at this many BLOB bytes


class CopyError(Exception):
    """The copy cannot be done (refused target, unreadable source); the message says why."""


class UsageError(CopyError):
    """A bad ``--from``/``--to``."""


def _last(row: tuple) -> tuple:
    """SQLite metric_names row → PostgreSQL's: (last_value, last_kind) → (last_num, last_int, last_kind)."""
    from ml_dash.server.storage.postgres.metrics import encode_last

    pk, experiment_pk, name, value, kind, step_hi, ordered, tail_pk = row
    num = integer = None
    if kind is not None:
        num, integer, kind = encode_last(decode_value(value, kind))
    return pk, experiment_pk, name, num, integer, kind, step_hi, bool(ordered), tail_pk


def _chunk(row: tuple) -> tuple:
    """SQLite chunk row (summary from metric_summaries, None when missing) → PostgreSQL's, summary recomputed if
    missing."""
    *head, steps, values, kinds, stamps, codec, summary = row
    if summary is None:
        arrays = (decode_column(blob, DTYPES[c], codec) for blob, c in zip((steps, values, kinds), COLUMNS))
        summary = summarize(*arrays).tobytes()
    return (*head, bytes(steps), bytes(values), bytes(kinds), bytes(stamps), codec, bytes(summary))


MEDIA_COPY = ('pk', 'experiment_pk', 'run_pk', 'key', 'step', 'timestamp', 'item_index', 'kind', 'format', 'sha256', 'byte_offset', 'byte_length', 'digest', 'shape', 'caption', 'meta', 'thumb_sha256', 'thumb_offset', 'thumb_length')
HISTOGRAM_COPY = ('pk', 'experiment_pk', 'run_pk', 'key', 'step', 'timestamp', 'bins', 'edges', 'counts')
# (PostgreSQL table, its columns, SQLite query in the same column order, row conversion), in dependency order.
TABLES: list[tuple[str, tuple[str, ...], str, Callable[[tuple], tuple] | None]] = [
    ("experiments", ("pk", "id", "namespace", "workspace", "directory", "prefix", "readme", "hostname", "created_at",
                     "params", "tags", "notes", "deleted_at"),
     "SELECT pk, id, namespace, workspace, directory, prefix, readme, hostname, created_at, params, tags, notes, "
     "deleted_at FROM experiments ORDER BY pk", None),
    ("runs", ("pk", "id", "experiment_pk", "client_run_id", "status", "hostname", "started_at", "ended_at", "error",
              "job_id", "rank", "world_size", "heartbeat_at"),
     "SELECT pk, id, experiment_pk, client_run_id, status, hostname, started_at, ended_at, error, job_id, rank, "
     "world_size, heartbeat_at FROM runs ORDER BY pk", None),
    ("streams", ("experiment_pk", "stream_id", "acked"),
     "SELECT experiment_pk, stream_id, acked FROM streams ORDER BY experiment_pk, stream_id", None),
    ("metric_names", ("pk", "experiment_pk", "name", "last_num", "last_int", "last_kind", "step_hi", "ordered",
                      "tail_pk"),
     "SELECT pk, experiment_pk, name, last_value, last_kind, step_hi, ordered, tail_pk FROM metric_names ORDER BY pk",
     _last),
    ("metric_chunks", ("pk", "name_pk", "run_pk", "n", "step_min", "step_max", "steps", "vals", "kinds",
                       "timestamps", "codec", "summary"),
     'SELECT c.pk, c.name_pk, c.run_pk, c.n, c.step_min, c.step_max, c.steps, c."values", c.kinds, c.timestamps, '
     "c.codec, s.summary FROM metric_chunks c LEFT JOIN metric_summaries s ON s.chunk_pk = c.pk ORDER BY c.pk", _chunk),
    ("parameters", ("pk", "experiment_pk", "run_pk", "record"),
     "SELECT pk, experiment_pk, run_pk, record FROM parameters ORDER BY pk", None),
    ("logs", ("pk", "experiment_pk", "run_pk", "timestamp", "level", "message", "context"),
     "SELECT pk, experiment_pk, run_pk, timestamp, level, message, context FROM logs ORDER BY pk", None),
    ("console", ("pk", "experiment_pk", "run_pk", "rank", "timestamp", "stream", "line"),
     "SELECT pk, experiment_pk, run_pk, rank, timestamp, stream, line FROM console ORDER BY pk", None),
    ("files", ("experiment_pk", "path", "size", "sha256", "updated_at"),
     "SELECT experiment_pk, path, size, sha256, updated_at FROM files ORDER BY experiment_pk, path", None),
    ("experiment_environments", ("experiment_pk", "environment", "updated_at"),
     "SELECT experiment_pk, environment, updated_at FROM experiment_environments ORDER BY experiment_pk", None),
    *((table, columns, f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1", None) for table, columns in (
        # Alerts (docs/alerts.md): the same columns on both backends.
        ("alert_rules", ("pk", "id", "namespace", "workspace", "directory", "experiment_id", "name", "kind", "params",
                         "level", "webhook_url", "webhook_format", "secret", "cooldown", "enabled", "created_at",
                         "updated_at", "deleted_at")),
        ("alerts", ("pk", "id", "rule_pk", "namespace", "experiment_id", "run_id", "key", "level", "title", "text",
                    "late", "fired_at", "resolved_at")),
        ("alert_deliveries", ("pk", "alert_pk", "event", "status", "attempts", "next_at", "claimed_until",
                              "created_at", "finished_at", "last_error")),
        ("alert_attempts", ("pk", "delivery_pk", "at", "http_status", "error", "seconds")),
        ("alert_heartbeats", ("run_id", "data_at", "beat_at")))),
    ("media", MEDIA_COPY, f"SELECT {', '.join(MEDIA_COPY)} FROM media ORDER BY pk", None),
    ("media_histograms", HISTOGRAM_COPY, f"SELECT {', '.join(HISTOGRAM_COPY)} FROM media_histograms ORDER BY pk",
     lambda row: (*row[:7], bytes(row[7]), bytes(row[8]))),
]
SERIAL_TABLES = ("experiments", "runs", "metric_names", "metric_chunks", "parameters", "logs", "console", "alert_rules",
                 "alerts", "alert_deliveries", "alert_attempts", "media", "media_histograms")


def sqlite_path(source: str) -> str:
    """``--from``: ``sqlite:///path``, a data directory (its ``ml-dash.sqlite3``) or the database file itself."""
    path = source[len("sqlite:///"):] if source.startswith("sqlite:///") else source
    if source.startswith(("postgres://", "postgresql://")) or "://" in path:
        raise UsageError(f"--from must be sqlite:///path/ml-dash.sqlite3 or a data directory, got {source!r}")
    if os.path.isdir(path):
        path = os.path.join(path, "ml-dash.sqlite3")
    if not os.path.isfile(path):
        raise UsageError(f"--from: no SQLite database at {path}")
    return path


def redact(url: str) -> str:
    """The URL without its password, for output."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


async def _prepare_source(path: str) -> tuple[sqlite3.Connection, int | None]:
    """A read-only connection to a database at the latest SQLite schema version (older ones are migrated first, the
    way the server does on start); returns it and the version it had before, when it was migrated."""
    latest = SQLITE_MIGRATIONS[-1][0]
    conn = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True,
                           isolation_level=None)
    try:
        version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CopyError(f"{path} is not an ml-dash SQLite database: {exc}") from None
    if version > latest:
        conn.close()
        raise CopyError(f"{path} has schema version {version}, newer than this ml-dash knows ({latest}): "
                        "run the copy with the ml-dash version that wrote it")
    if version == latest:
        return conn, None
    conn.close()
    from ml_dash.server.storage.sqlite.storage import SQLiteStorage

    store = SQLiteStorage(path)  # the normal open runs the missing migrations
    await store.open()
    await store.close()
    return (await _prepare_source(path))[0], version


def _batches(cursor: sqlite3.Cursor, convert: Callable[[tuple], tuple] | None) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    size = 0
    for row in cursor:
        row = convert(row) if convert else row
        batch.append(row)
        size += sum(len(v) for v in row if isinstance(v, (bytes, str)))
        if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


async def copy_database(source: str, target: str,
                        echo: Callable[[str], None] = print) -> tuple[dict[str, int], int]:
    """Copy the SQLite database ``source`` into the empty PostgreSQL database ``target``: (rows per table, number of
    distinct blobs the file records name)."""
    from ml_dash.server.storage.postgres.storage import PostgresStorage

    path = sqlite_path(source)
    if not target.startswith(("postgres://", "postgresql://")):
        raise UsageError(f"--to must be a postgresql://user:password@host/database URL, got {redact(target)!r}")
    src, migrated = await _prepare_source(path)
    if migrated is not None:
        echo(f"source schema migrated from version {migrated} to {SQLITE_MIGRATIONS[-1][0]} (as the server does)")
    store = PostgresStorage(target, min_size=1, max_size=1)  # creates or migrates the schema, as the server would
    counts: dict[str, int] = {}
    try:
        await store.open()
        src.execute("BEGIN")  # one snapshot of the source, even if a server still writes to it
        async with store._pool.acquire() as conn, conn.transaction():
            # Nobody may add experiments while we check and fill: a server started early waits for the commit.
            await conn.execute("LOCK TABLE experiments IN EXCLUSIVE MODE")
            existing = await conn.fetchval("SELECT count(*) FROM experiments")
            if existing:
                raise CopyError(f"the target database already holds {existing} experiment(s): copy only into an empty "
                                "database (a new database, or a new schema via ?search_path=...)")
            for table, columns, query, convert in TABLES:
                counts[table] = 0
                for batch in _batches(src.execute(query), convert):
                    await conn.copy_records_to_table(table, records=batch, columns=list(columns))
                    counts[table] += len(batch)
            floors = dict(src.execute("SELECT name, seq FROM sqlite_sequence").fetchall())  # AUTOINCREMENT high marks
            for table in SERIAL_TABLES:
                top = max(await conn.fetchval(f"SELECT COALESCE(MAX(pk), 0) FROM {table}"), floors.get(table) or 0)
                if top:
                    await conn.execute("SELECT setval(pg_get_serial_sequence($1, 'pk'), $2)", table, top)
        blobs = src.execute("SELECT COUNT(DISTINCT sha256) FROM files").fetchone()[0]
    finally:
        src.close()
        await store.close()
    return counts, blobs


def blob_note(path: str, files: int, blobs: int) -> str:
    data_dir = os.path.dirname(os.path.abspath(path))
    return (f"file contents are not in the database: {files} file record(s) name {blobs} blob(s) by SHA-256 in the "
            f"blob store. Start the new server with the same data directory, copy {os.path.join(data_dir, 'blobs')}/ "
            "(or the old server's --data blobs/) into the new server's --data, or keep using the same "
            "--files s3://... bucket.")


def copy_main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        counts, blobs = asyncio.run(copy_database(args.source, args.target, echo=lambda line: print(line, flush=True)))
    except UsageError as exc:
        print(f"ml-dash server copy: {exc}", file=sys.stderr)
        return 2
    except CopyError as exc:
        print(f"ml-dash server copy: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # database errors: nothing was committed
        print(f"ml-dash server copy: failed, the target is unchanged: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    path = sqlite_path(args.source)
    print(f"copied {path} -> {redact(args.target)} in {seconds:.2f} s")
    for table, count in counts.items():
        print(f"  {table:<14}{count:>12,} rows")
    print(blob_note(path, counts.get("files", 0), blobs))
    print("point the server at the new database with --db (stop the old server first); clients resume their streams.")
    return 0


def add_copy_subcommand(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "copy", help="copy an SQLite server's database into an empty PostgreSQL database",
        description="Copy everything an SQLite ml-dash server stores (experiments, runs, parameters, logs, file "
                    "records, metrics, stream offsets) into an empty PostgreSQL database, in one transaction. Stop "
                    "the old server first. File bytes stay in the blob store (the data directory's blobs/ or "
                    "--files s3://...).")
    parser.add_argument("--from", dest="source", required=True, metavar="sqlite:///PATH|DATA_DIR",
                        help="the SQLite database: sqlite:///path/ml-dash.sqlite3, or a data directory")
    parser.add_argument("--to", dest="target", required=True, metavar="postgresql://USER:PASSWORD@HOST/DB",
                        help="the PostgreSQL database (schema created if missing; it must hold no experiments)")
    parser.set_defaults(func=copy_main)
