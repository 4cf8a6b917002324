"""Versioned PostgreSQL migrations. Append new versions; never edit one that has shipped.

Several server workers (or machines) may start at once against one database, so ``migrate`` holds a PostgreSQL
advisory lock (keyed by the current schema) while it reads the version and applies what is missing.
"""
from __future__ import annotations

from typing import Awaitable, Callable

import asyncpg
import numpy as np

from ml_dash.server.series.chunks import COLUMNS, DTYPES, summarize
from ml_dash.server.storage.postgres.driver import answerer
from ml_dash.server.storage.sql.protocol import migrations, run_async


async def _chunk_summaries(conn: asyncpg.Connection) -> None:
    """Version 2: a ``summary`` column per chunk (see ``series.chunks.summarize``), computed for every existing chunk."""
    await conn.execute("ALTER TABLE metric_chunks ADD COLUMN summary BYTEA")
    for pk in [r[0] for r in await conn.fetch("SELECT pk FROM metric_chunks ORDER BY pk")]:  # one chunk at a time
        row = await conn.fetchrow("SELECT steps, vals, kinds FROM metric_chunks WHERE pk = $1", pk)
        steps, values, kinds = (np.frombuffer(blob, DTYPES[c]) for blob, c in zip(row, COLUMNS))
        await conn.execute("UPDATE metric_chunks SET summary = $1 WHERE pk = $2",
                           summarize(steps, values, kinds).tobytes(), pk)


async def _experiment_columns(conn: asyncpg.Connection) -> None:
    """Version 3: tags, notes and soft delete, and the replayed parameters kept in a column at ingest, so a filter or
    an order on ``params.*`` runs in the database; filled here from the stored operations. JSON text, not JSONB, so
    key order survives (queries cast it)."""
    from ml_dash.server.storage.sql.query import merged_params

    await conn.execute("ALTER TABLE experiments ADD COLUMN params TEXT, ADD COLUMN tags TEXT, ADD COLUMN notes TEXT, "
                       "ADD COLUMN deleted_at DOUBLE PRECISION")
    await conn.execute("CREATE INDEX experiments_listed ON experiments (namespace, workspace, created_at)")
    for pk in [r[0] for r in await conn.fetch("SELECT DISTINCT experiment_pk FROM parameters")]:  # one at a time
        records = [r[0] for r in await conn.fetch("SELECT record FROM parameters WHERE experiment_pk = $1 ORDER BY pk",
                                                  pk)]
        await conn.execute("UPDATE experiments SET params = $1 WHERE pk = $2", merged_params(None, records), pk)


MIGRATIONS: list[tuple[int, str | Callable[[asyncpg.Connection], Awaitable[None]]]] = [
    (1, """
    CREATE TABLE experiments (
        pk BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        namespace TEXT NOT NULL, workspace TEXT NOT NULL, directory TEXT NOT NULL, prefix TEXT NOT NULL,
        readme TEXT, hostname TEXT, created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (namespace, workspace, directory, prefix)
    );
    CREATE TABLE runs (
        pk BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        client_run_id TEXT NOT NULL,
        status TEXT NOT NULL, hostname TEXT, started_at DOUBLE PRECISION, ended_at DOUBLE PRECISION, error TEXT,
        UNIQUE (experiment_pk, client_run_id)
    );
    -- The acknowledged byte offset of each client stream: the heart of idempotent ingest, shared by all workers.
    CREATE TABLE streams (
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        stream_id TEXT NOT NULL,
        acked BIGINT NOT NULL,
        PRIMARY KEY (experiment_pk, stream_id)
    );
    -- One row per (experiment, metric name), with the latest value: last_int keeps 64-bit ints exact, last_num the
    -- rest, last_kind tells number/bool/null/NaN apart (see _storage.VALUE_KIND_*). step_hi and ordered (every point
    -- so far came in step order: reads skip the sort) and tail_pk (the newest chunk, which a small next batch of the
    -- same run is merged into) are kept as in SQLite. A batch locks its names' rows, so a series has one writer.
    CREATE TABLE metric_names (
        pk BIGSERIAL PRIMARY KEY,
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        name TEXT NOT NULL,
        last_num DOUBLE PRECISION, last_int BIGINT, last_kind SMALLINT,
        step_hi DOUBLE PRECISION, ordered BOOLEAN NOT NULL DEFAULT TRUE, tail_pk BIGINT,
        UNIQUE (experiment_pk, name)
    );
    -- Columnar chunks: one row per (batch, metric name) holding little-endian arrays (see _chunks): float64 steps
    -- (NaN: no step), float64 values (column vals), int8 kinds, float64 timestamps. step_min/step_max (NULL when the chunk has no
    -- step) let a step-range read skip whole chunks; a 1M-point series is a few dozen rows.
    CREATE TABLE metric_chunks (
        pk BIGSERIAL PRIMARY KEY,
        name_pk BIGINT NOT NULL REFERENCES metric_names(pk),
        run_pk BIGINT,
        n INTEGER NOT NULL,
        step_min DOUBLE PRECISION, step_max DOUBLE PRECISION,
        steps BYTEA NOT NULL, vals BYTEA NOT NULL, kinds BYTEA NOT NULL, timestamps BYTEA NOT NULL
    );
    CREATE INDEX metric_chunks_series ON metric_chunks (name_pk, pk);
    -- Parameter records and log contexts are kept as JSON text, not JSONB, so key order survives.
    CREATE TABLE parameters (
        pk BIGSERIAL PRIMARY KEY,
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        run_pk BIGINT, record TEXT NOT NULL
    );
    CREATE INDEX parameters_experiment ON parameters (experiment_pk, pk);
    CREATE TABLE logs (
        pk BIGSERIAL PRIMARY KEY,
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        run_pk BIGINT, timestamp DOUBLE PRECISION, level TEXT, message TEXT, context TEXT
    );
    CREATE INDEX logs_experiment ON logs (experiment_pk, level, pk);
    CREATE INDEX logs_experiment_pk ON logs (experiment_pk, pk);
    CREATE TABLE files (
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        path TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (experiment_pk, path)
    );
    """),
    (2, _chunk_summaries),
    (3, _experiment_columns),
    (4, """
    -- The environment of the experiment's latest run (docs/system-metrics.md): JSON text, key order kept.
    CREATE TABLE IF NOT EXISTS experiment_environments (
        experiment_pk BIGINT PRIMARY KEY REFERENCES experiments(pk),
        environment TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL
    )
    """),
    # gc asks whether any file record still names a blob before deleting it
    (5, "CREATE INDEX files_sha256 ON files (sha256)"),
    (6, """
    -- Alerts (docs/alerts.md): rules scoped to a namespace (and optionally a workspace, directory or experiment),
    -- the alerts they raised (one open row per rule, experiment and key: the partial unique index dedupes across
    -- workers), the webhook deliveries (claimed in the database so each is sent once) and each delivery attempt.
    CREATE TABLE alert_rules (
        pk BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, namespace TEXT NOT NULL, workspace TEXT, directory TEXT,
        experiment_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL, level TEXT NOT NULL,
        webhook_url TEXT NOT NULL, webhook_format TEXT NOT NULL, secret TEXT, cooldown DOUBLE PRECISION NOT NULL,
        enabled INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        deleted_at DOUBLE PRECISION
    );
    CREATE INDEX alert_rules_namespace ON alert_rules (namespace);
    CREATE TABLE alerts (
        pk BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, rule_pk BIGINT NOT NULL REFERENCES alert_rules(pk),
        namespace TEXT NOT NULL, experiment_id TEXT NOT NULL, run_id TEXT, key TEXT NOT NULL, level TEXT NOT NULL,
        title TEXT NOT NULL, text TEXT, late INTEGER NOT NULL, fired_at DOUBLE PRECISION NOT NULL,
        resolved_at DOUBLE PRECISION
    );
    CREATE UNIQUE INDEX alerts_open ON alerts (rule_pk, experiment_id, key) WHERE resolved_at IS NULL;
    CREATE INDEX alerts_experiment ON alerts (experiment_id, pk);
    CREATE INDEX alerts_namespace ON alerts (namespace, pk);
    CREATE TABLE alert_deliveries (
        pk BIGSERIAL PRIMARY KEY, alert_pk BIGINT NOT NULL REFERENCES alerts(pk), event TEXT NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL, next_at DOUBLE PRECISION NOT NULL,
        claimed_until DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION, last_error TEXT
    );
    CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_at);
    CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_pk);
    CREATE TABLE alert_attempts (
        pk BIGSERIAL PRIMARY KEY, delivery_pk BIGINT NOT NULL REFERENCES alert_deliveries(pk),
        at DOUBLE PRECISION NOT NULL,
        http_status INTEGER, error TEXT, seconds DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX alert_attempts_delivery ON alert_attempts (delivery_pk);
    -- When a run last sent data (metrics, logs) and anything at all (system rows too): the stall watchdog's clock,
    -- written by each worker every few seconds, never per batch.
    CREATE TABLE alert_heartbeats (run_id TEXT PRIMARY KEY, data_at DOUBLE PRECISION, beat_at DOUBLE PRECISION)
    """),
    (7, """
    -- Branches (docs/branches.md): the step from which a run supersedes earlier runs' points (NULL: it appends), and
    -- the experiment a fork starts from, with the last step of the parent's history it takes.
    ALTER TABLE runs ADD COLUMN branch_step DOUBLE PRECISION;
    ALTER TABLE experiments ADD COLUMN fork_parent_pk BIGINT REFERENCES experiments(pk);
    ALTER TABLE experiments ADD COLUMN fork_step DOUBLE PRECISION;
    CREATE INDEX experiments_forks ON experiments (fork_parent_pk)
    """),
    # The format of each chunk's BLOBs (series.codec): the chunks already stored stay as they are, RAW (0); new
    # ones are compressed. A constant default rewrites no row (PostgreSQL 11+).
    (8, "ALTER TABLE metric_chunks ADD COLUMN codec SMALLINT NOT NULL DEFAULT 0"),
    # Distributed jobs, heartbeats and the console, as SQLite's version 12.
    (9, """
    ALTER TABLE runs ADD COLUMN job_id TEXT;
    ALTER TABLE runs ADD COLUMN rank INTEGER;
    ALTER TABLE runs ADD COLUMN world_size INTEGER;
    ALTER TABLE runs ADD COLUMN heartbeat_at DOUBLE PRECISION;
    CREATE INDEX runs_job ON runs (experiment_pk, job_id);
    CREATE INDEX runs_heartbeat ON runs (status, heartbeat_at);
    CREATE TABLE console (
        pk BIGSERIAL PRIMARY KEY,
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        run_pk BIGINT, rank INTEGER NOT NULL DEFAULT 0, timestamp DOUBLE PRECISION, stream TEXT NOT NULL,
        line TEXT NOT NULL
    );
    CREATE INDEX console_experiment ON console (experiment_pk, rank, pk)
    """),
    (10, """
    -- Media (docs/media.md): one row per item, naming its bytes in a file-store blob (a batch's payload) and its
    -- thumbnail's in another. Histograms are also rows of their own, read by step range for the heatmap.
    CREATE TABLE media (
        pk BIGSERIAL PRIMARY KEY,
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        run_pk BIGINT, key TEXT NOT NULL, step BIGINT, timestamp DOUBLE PRECISION NOT NULL, item_index INTEGER NOT NULL,
        kind TEXT NOT NULL, format TEXT NOT NULL, sha256 TEXT NOT NULL, byte_offset BIGINT NOT NULL,
        byte_length BIGINT NOT NULL, digest TEXT NOT NULL, shape TEXT NOT NULL, caption TEXT, meta TEXT NOT NULL,
        thumb_sha256 TEXT, thumb_offset BIGINT, thumb_length BIGINT
    );
    CREATE INDEX media_key_step ON media (experiment_pk, key, step);
    CREATE INDEX media_sha256 ON media (sha256);
    CREATE INDEX media_thumb_sha256 ON media (thumb_sha256);
    CREATE TABLE media_histograms (
        pk BIGSERIAL PRIMARY KEY,
        experiment_pk BIGINT NOT NULL REFERENCES experiments(pk),
        run_pk BIGINT, key TEXT NOT NULL, step BIGINT, timestamp DOUBLE PRECISION NOT NULL, bins INTEGER NOT NULL,
        edges BYTEA NOT NULL, counts BYTEA NOT NULL
    );
    CREATE INDEX media_histograms_key_step ON media_histograms (experiment_pk, key, step)
    """),
]

# pg_advisory_lock key: fixed namespace for ml-dash, hashed with the schema so test schemas do not serialise.
_LOCK_SQL = "SELECT pg_advisory_lock(hashtext('ml-dash-migrate:' || current_schema()))"
_UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext('ml-dash-migrate:' || current_schema()))"


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply every migration newer than the database's version, each in its own transaction; return the version."""
    await conn.execute(_LOCK_SQL)
    try:
        return await run_async(migrations(MIGRATIONS, "DOUBLE PRECISION", "BEGIN"), answerer(conn))
    finally:
        await conn.execute(_UNLOCK_SQL)
