"""SQLite keeps block summaries in ``metric_summaries``, one row per chunk, written in the chunk's transaction."""
from __future__ import annotations

import sqlite3

from ml_dash.server.series.chunks import encode_chunk
from ml_dash.server.series.downsample import Envelope
from ml_dash.server.storage.sqlite.storage import SQLiteStorage
from ml_dash.server.storage.sqlite.migrations import MIGRATIONS


async def test_summary_rows_follow_chunks_through_merges(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
        for i in range(6):  # small batches: each merges into the tail, which gets a fresh pk
            events = [{"timestamp": 1.0, "step": s, "metrics": {"m": float(s)}} for s in range(i * 10, i * 10 + 10)]
            await storage.apply_batch(experiment_id, None, "metrics", "s", i, i + 1, events)
    finally:
        await storage.close()
    conn = sqlite3.connect(path)
    chunks = conn.execute("SELECT pk, name_pk, n, step_min, step_max FROM metric_chunks ORDER BY pk").fetchall()
    summaries = conn.execute("SELECT chunk_pk, name_pk, n, step_min, step_max FROM metric_summaries "
                             "ORDER BY chunk_pk").fetchall()
    assert chunks == summaries and len(chunks) == 1 and chunks[0][2] == 60


async def test_migration_moves_summaries_out_of_chunk_rows(tmp_path):
    """A data dir at version 4 (summary column in metric_chunks) gets them moved to metric_summaries on open."""
    path = str(tmp_path / "v4.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS[:4]:
        if callable(sql):
            sql(conn)
        else:
            conn.executescript(sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute("INSERT INTO experiments (pk, id, namespace, workspace, directory, prefix, created_at) "
                 "VALUES (1, 'e1', 'a', 'w', '', 'p', 0)")
    chunk = encode_chunk([(s, None, -4.0 if s == 4000 else 1.0) for s in range(5000)])
    conn.execute("INSERT INTO metric_names (pk, experiment_pk, name, tail_pk) VALUES (1, 1, 'm', 3)")
    conn.execute('INSERT INTO metric_chunks (pk, name_pk, n, step_min, step_max, steps, "values", kinds, timestamps, '
                 "summary) VALUES (3, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (chunk.n, chunk.step_min, chunk.step_max, chunk.steps, chunk.values, chunk.kinds, chunk.timestamps,
                  chunk.summary))
    conn.close()
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        series = await storage.metric_series("e1", "m", None, None, 2)
        assert isinstance(series, Envelope) and series.min == -4.0 and series.count == 5000
    finally:
        await storage.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT chunk_pk, name_pk, n, summary FROM metric_summaries").fetchall() == [
        (3, 1, 5000, chunk.summary)]
    if sqlite3.sqlite_version_info >= (3, 35, 0):
        assert "summary" not in [r[1] for r in conn.execute("PRAGMA table_info(metric_chunks)")]
