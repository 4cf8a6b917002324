"""Versioned SQLite migrations. Append new versions; never edit one that has shipped."""
from __future__ import annotations

import sqlite3
from typing import Callable

import numpy as np

from ml_dash.server.series.chunks import COLUMNS, DTYPES, encode_chunk, summarize
from ml_dash.server.storage.sql.protocol import migrations, run_sync
from ml_dash.server.storage.sqlite.driver import answerer

CHUNK_POINTS = 65_536  # points per chunk when converting old rows: big enough to read fast, small to rewrite


def _points_to_chunks(conn: sqlite3.Connection) -> None:
    """Version 2: per-point ``metrics`` rows become columnar chunks in stored order, then the old table goes."""
    from ml_dash.server.storage.sqlite.metrics import chunk_row, decode_value

    for (name_pk,) in conn.execute("SELECT pk FROM metric_names").fetchall():
        rows = conn.execute("SELECT step, timestamp, value, kind, run_pk FROM metrics WHERE name_pk = ? ORDER BY rowid",
                            (name_pk,)).fetchall()
        runs = [r[4] for r in rows]
        start, state = 0, (None, 1, None)  # (step_hi, ordered, tail_pk) as apply_batch keeps them
        while start < len(rows):
            end = min(start + CHUNK_POINTS, len(rows))
            end = start + next((i for i, r in enumerate(runs[start:end]) if r != runs[start]), end - start)
            chunk = encode_chunk([(s, t, decode_value(v, k)) for s, t, v, k, _ in rows[start:end]])
            state = chunk_row(conn, name_pk, runs[start], chunk, *state[:2], summary=False)  # column: version 4
            start = end
        if rows:
            step, stamp = rows[-1][0], rows[-1][1]
            conn.execute("UPDATE metric_names SET last_step = ?, last_timestamp = ?, step_hi = ?, ordered = ?, "
                         "tail_pk = ? WHERE pk = ?", (step, stamp, *state, name_pk))
    conn.execute("DROP TABLE metrics")


def _chunk_summaries(conn: sqlite3.Connection) -> None:
    """Version 4: a ``summary`` BLOB per chunk (see ``series.chunks.summarize``), computed for every existing chunk."""
    conn.execute("ALTER TABLE metric_chunks ADD COLUMN summary BLOB")
    for (pk,) in conn.execute("SELECT pk FROM metric_chunks").fetchall():  # one chunk in memory at a time
        row = conn.execute('SELECT steps, "values", kinds FROM metric_chunks WHERE pk = ?', (pk,)).fetchone()
        steps, values, kinds = (np.frombuffer(blob, DTYPES[c]) for blob, c in zip(row, COLUMNS))
        conn.execute("UPDATE metric_chunks SET summary = ? WHERE pk = ?", (summarize(steps, values, kinds).tobytes(), pk))


def _summaries_table(conn: sqlite3.Connection) -> None:
    """Version 5: summaries move to their own table, so reading them never walks a chunk's point BLOBs.

    Version 4 added ``summary`` by ALTER TABLE, i.e. as each row's last column, behind the point BLOBs in overflow
    pages: SQLite followed every row's overflow chain to reach it. The column is dropped (SQLite >= 3.35; older
    libraries leave it, unused and no longer written).
    """
    conn.execute("""CREATE TABLE metric_summaries (
        chunk_pk INTEGER PRIMARY KEY,
        name_pk INTEGER NOT NULL REFERENCES metric_names(pk),
        n INTEGER NOT NULL, step_min REAL, step_max REAL, summary BLOB NOT NULL
    )""")
    conn.execute("CREATE INDEX metric_summaries_range ON metric_summaries (name_pk, step_max, step_min)")
    conn.execute("INSERT INTO metric_summaries (chunk_pk, name_pk, n, step_min, step_max, summary) "
                 "SELECT pk, name_pk, n, step_min, step_max, summary FROM metric_chunks WHERE summary IS NOT NULL")
    if sqlite3.sqlite_version_info >= (3, 35, 0):
        conn.execute("ALTER TABLE metric_chunks DROP COLUMN summary")
    else:
        conn.execute("UPDATE metric_chunks SET summary = NULL")


def _experiment_columns(conn: sqlite3.Connection) -> None:
    """Version 6: tags, notes and soft delete, and the replayed parameters kept in a column (JSON text) at ingest, so
    a filter or an order on ``params.*`` runs in the database; filled here from the stored operations."""
    from ml_dash.server.storage.sql.query import merged_params

    for column in ("params TEXT", "tags TEXT", "notes TEXT", "deleted_at REAL"):
        conn.execute(f"ALTER TABLE experiments ADD COLUMN {column}")
    conn.execute("CREATE INDEX experiments_listed ON experiments (namespace, workspace, created_at)")
    for (pk,) in conn.execute("SELECT DISTINCT experiment_pk FROM parameters").fetchall():  # one at a time
        records = [r[0] for r in conn.execute("SELECT record FROM parameters WHERE experiment_pk = ? ORDER BY pk",
                                              (pk,))]
        conn.execute("UPDATE experiments SET params = ? WHERE pk = ?", (merged_params(None, records), pk))


MIGRATIONS: list[tuple[int, str | Callable[[sqlite3.Connection], None]]] = [
    (1, """
    CREATE TABLE experiments (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        namespace TEXT NOT NULL, workspace TEXT NOT NULL, directory TEXT NOT NULL, prefix TEXT NOT NULL,
        readme TEXT, hostname TEXT, created_at REAL NOT NULL,
        UNIQUE (namespace, workspace, directory, prefix)
    );
    CREATE TABLE runs (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        client_run_id TEXT NOT NULL,
        status TEXT NOT NULL, hostname TEXT, started_at REAL, ended_at REAL, error TEXT,
        UNIQUE (experiment_pk, client_run_id)
    );
    -- The acknowledged byte offset of each client stream: the heart of idempotent ingest.
    CREATE TABLE streams (
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        stream_id TEXT NOT NULL,
        acked INTEGER NOT NULL,
        PRIMARY KEY (experiment_pk, stream_id)
    ) WITHOUT ROWID;
    -- One row per (experiment, metric name) so that metric rows carry a single small integer for both.
    CREATE TABLE metric_names (
        pk INTEGER PRIMARY KEY,
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        name TEXT NOT NULL,
        last_value, last_kind INTEGER,
        UNIQUE (experiment_pk, name)
    );
    -- value has no declared type so ints stay exact ints, and kind separates null/NaN/bool (see _storage.VALUE_KIND_*).
    CREATE TABLE metrics (
        name_pk INTEGER NOT NULL REFERENCES metric_names(pk),
        step INTEGER, timestamp REAL, value, kind INTEGER NOT NULL, run_pk INTEGER
    );
    -- (experiment, name) via name_pk, then step: reading one series is a single ordered index range.
    CREATE INDEX metrics_series ON metrics (name_pk, step);
    CREATE TABLE parameters (
        pk INTEGER PRIMARY KEY,
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        run_pk INTEGER, record TEXT NOT NULL
    );
    CREATE INDEX parameters_experiment ON parameters (experiment_pk);
    CREATE TABLE logs (
        pk INTEGER PRIMARY KEY,
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        run_pk INTEGER, timestamp REAL, level TEXT, message TEXT, context TEXT
    );
    CREATE INDEX logs_experiment ON logs (experiment_pk, level);
    CREATE TABLE files (
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (experiment_pk, path)
    ) WITHOUT ROWID;
    """),
    (2, """
    -- Columnar metrics (see series/chunks.py): one row per metric name per batch, and a small tail chunk absorbs the next batch.
    -- AUTOINCREMENT: pk never comes back after a tail is replaced, so a reader can tell new chunks by pk alone.
    CREATE TABLE metric_chunks (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        name_pk INTEGER NOT NULL REFERENCES metric_names(pk),
        run_pk INTEGER, n INTEGER NOT NULL, step_min REAL, step_max REAL,
        steps BLOB NOT NULL, "values" BLOB NOT NULL, kinds BLOB NOT NULL, timestamps BLOB NOT NULL
    );
    -- A step-range read takes the chunks with step_max >= lo and step_min <= hi of one name from the index alone.
    CREATE INDEX metric_chunks_range ON metric_chunks (name_pk, step_max, step_min);
    -- Per series: the last point (last_metrics, live reads), the highest step and whether every point so far came in
    -- step order (then reads skip the sort), and the newest chunk (the merge target and the cache's change marker).
    ALTER TABLE metric_names ADD COLUMN last_step INTEGER;
    ALTER TABLE metric_names ADD COLUMN last_timestamp REAL;
    ALTER TABLE metric_names ADD COLUMN step_hi REAL;
    ALTER TABLE metric_names ADD COLUMN ordered INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE metric_names ADD COLUMN tail_pk INTEGER
    """),
    (3, _points_to_chunks),
    (4, _chunk_summaries),
    (5, _summaries_table),
    (6, _experiment_columns),
    (7, """
    -- The environment of the experiment's latest run (docs/system-metrics.md): JSON text, key order kept.
    CREATE TABLE IF NOT EXISTS experiment_environments (
        experiment_pk INTEGER PRIMARY KEY REFERENCES experiments(pk),
        environment TEXT NOT NULL, updated_at REAL NOT NULL
    )
    """),
    # gc asks whether any file record still names a blob before deleting it
    (8, "CREATE INDEX files_sha256 ON files (sha256)"),
    (9, """
    -- Media (docs/media.md): one row per item, naming its bytes in a file-store blob (a batch's payload) and its
    -- thumbnail's in another. Histograms are also rows of their own, read by step range for the heatmap.
    CREATE TABLE media (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        run_pk INTEGER, key TEXT NOT NULL, step INTEGER, timestamp REAL NOT NULL, item_index INTEGER NOT NULL,
        kind TEXT NOT NULL, format TEXT NOT NULL, sha256 TEXT NOT NULL, byte_offset INTEGER NOT NULL,
        byte_length INTEGER NOT NULL, digest TEXT NOT NULL, shape TEXT NOT NULL, caption TEXT, meta TEXT NOT NULL,
        thumb_sha256 TEXT, thumb_offset INTEGER, thumb_length INTEGER
    );
    CREATE INDEX media_key_step ON media (experiment_pk, key, step);
    CREATE INDEX media_sha256 ON media (sha256);
    CREATE INDEX media_thumb_sha256 ON media (thumb_sha256);
    CREATE TABLE media_histograms (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        run_pk INTEGER, key TEXT NOT NULL, step INTEGER, timestamp REAL NOT NULL, bins INTEGER NOT NULL,
        edges BLOB NOT NULL, counts BLOB NOT NULL
    );
    CREATE INDEX media_histograms_key_step ON media_histograms (experiment_pk, key, step)
    """),
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database's version, each in its own transaction; return the version."""
    # BEGIN IMMEDIATE: take the write lock before reading anything a migration rewrites.
    return run_sync(migrations(MIGRATIONS, "REAL", "BEGIN IMMEDIATE"), answerer(conn))
