"""Versioned SQLite migrations. Append new versions; never edit one that has shipped."""
from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[int, str]] = [
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
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database's version, each in its own transaction; return the version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current
