"""Versioned SQLite migrations. Append new versions; never edit one that has shipped."""
from __future__ import annotations

import sqlite3
from typing import Callable

import numpy as np

from ml_dash.server.series.chunks import COLUMNS, DTYPES, encode_chunk, summarize
from ml_dash.server.series.codec import RAW
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
            # RAW: the codec column that says otherwise comes with version 9
            chunk = encode_chunk([(s, t, decode_value(v, k)) for s, t, v, k, _ in rows[start:end]], RAW)
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
    -- Alerts (docs/alerts.md): rules scoped to a namespace (and optionally a workspace, directory or experiment),
    -- the alerts they raised (one open row per rule, experiment and key: the partial unique index dedupes across
    -- workers), the webhook deliveries (claimed in the database so each is sent once) and each delivery attempt.
    CREATE TABLE alert_rules (
        pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, namespace TEXT NOT NULL, workspace TEXT, directory TEXT,
        experiment_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL, level TEXT NOT NULL,
        webhook_url TEXT NOT NULL, webhook_format TEXT NOT NULL, secret TEXT, cooldown REAL NOT NULL,
        enabled INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, deleted_at REAL
    );
    CREATE INDEX alert_rules_namespace ON alert_rules (namespace);
    CREATE TABLE alerts (
        pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, rule_pk INTEGER NOT NULL REFERENCES alert_rules(pk),
        namespace TEXT NOT NULL, experiment_id TEXT NOT NULL, run_id TEXT, key TEXT NOT NULL, level TEXT NOT NULL,
        title TEXT NOT NULL, text TEXT, late INTEGER NOT NULL, fired_at REAL NOT NULL, resolved_at REAL
    );
    CREATE UNIQUE INDEX alerts_open ON alerts (rule_pk, experiment_id, key) WHERE resolved_at IS NULL;
    CREATE INDEX alerts_experiment ON alerts (experiment_id, pk);
    CREATE INDEX alerts_namespace ON alerts (namespace, pk);
    CREATE TABLE alert_deliveries (
        pk INTEGER PRIMARY KEY, alert_pk INTEGER NOT NULL REFERENCES alerts(pk), event TEXT NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL, next_at REAL NOT NULL, claimed_until REAL,
        created_at REAL NOT NULL, finished_at REAL, last_error TEXT
    );
    CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_at);
    CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_pk);
    CREATE TABLE alert_attempts (
        pk INTEGER PRIMARY KEY, delivery_pk INTEGER NOT NULL REFERENCES alert_deliveries(pk), at REAL NOT NULL,
        http_status INTEGER, error TEXT, seconds REAL NOT NULL
    );
    CREATE INDEX alert_attempts_delivery ON alert_attempts (delivery_pk);
    -- When a run last sent data (metrics, logs) and anything at all (system rows too): the stall watchdog's clock,
    -- written by each worker every few seconds, never per batch.
    CREATE TABLE alert_heartbeats (run_id TEXT PRIMARY KEY, data_at REAL, beat_at REAL)
    """),
    (10, """
    -- Branches (docs/branches.md): the step from which a run supersedes earlier runs' points (NULL: it appends), and
    -- the experiment a fork starts from, with the last step of the parent's history it takes.
    ALTER TABLE runs ADD COLUMN branch_step REAL;
    ALTER TABLE experiments ADD COLUMN fork_parent_pk INTEGER REFERENCES experiments(pk);
    ALTER TABLE experiments ADD COLUMN fork_step REAL;
    CREATE INDEX experiments_forks ON experiments (fork_parent_pk)
    """),
    # The format of each chunk's BLOBs (series.codec): the chunks already stored stay as they are, RAW (0); new
    # ones are compressed. An added column with a constant default rewrites no row.
    (11, "ALTER TABLE metric_chunks ADD COLUMN codec INTEGER NOT NULL DEFAULT 0"),
    # Distributed jobs (docs/distributed.md): the ranks of one job are runs
    # with the same job_id; heartbeat_at is set only for runs whose client sends heartbeats (CRASHED when they stop).
    (12, """
    ALTER TABLE runs ADD COLUMN job_id TEXT;
    ALTER TABLE runs ADD COLUMN rank INTEGER;
    ALTER TABLE runs ADD COLUMN world_size INTEGER;
    ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
    CREATE INDEX runs_job ON runs (experiment_pk, job_id);
    CREATE INDEX runs_heartbeat ON runs (status, heartbeat_at);
    -- Captured stdout/stderr, one row per line (rank: which rank of the job printed it).
    CREATE TABLE console (
        pk INTEGER PRIMARY KEY,
        experiment_pk INTEGER NOT NULL REFERENCES experiments(pk),
        run_pk INTEGER, rank INTEGER NOT NULL DEFAULT 0, timestamp REAL, stream TEXT NOT NULL, line TEXT NOT NULL
    );
    CREATE INDEX console_experiment ON console (experiment_pk, rank, pk)
    """),
    (13, """
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
