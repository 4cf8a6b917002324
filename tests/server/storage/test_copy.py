"""``ml-dash server copy``: an SQLite server's database copied into PostgreSQL answers every read the same."""
from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys

import asyncpg
import pytest

from ml_dash.server.storage.copy import CopyError, copy_database
from ml_dash.server.series.downsample import Envelope, series_result
from ml_dash.format.params import replay
from ml_dash.server.storage.registry import open_storage

from ..conftest import POSTGRES_URL, postgres_schema_url

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL tests need ML_DASH_TEST_POSTGRES=postgresql://...")

TABLES = ("experiments", "runs", "streams", "metric_names", "metric_chunks", "parameters", "logs", "files",
          "experiment_environments")


def _value(step: int):
    """Mostly floats, with NaN, infinities and nulls sprinkled in."""
    return {0: math.nan, 1: math.inf, 2: -math.inf, 3: None}.get(step % 97, math.sin(step / 50))


async def _seed(path: str) -> dict:
    """A server's worth of data in SQLite through the storage API; returns the ids and stream ends it made."""
    store = open_storage(f"sqlite:///{path}", "unused")
    await store.open()
    try:
        a, _ = await store.create_experiment("alice", "vision", "runs/2024", "resnet", "# readme", "gpu-1")
        b, _ = await store.create_experiment("alice", "nlp", "", "bert", None, None)
        c, _ = await store.create_experiment("bob", "vision", "deep/dir", "vit", None, "gpu-2")
        r1 = await store.create_run(a, "run-1", "gpu-1", 1000.0)
        await store.update_run(r1, "FAILED", "Traceback: boom", 1010.5)
        r2 = await store.create_run(a, "run-2", None, 1020.0)
        await store.update_run(r2, "COMPLETED", None, 1030.0)
        rb = await store.create_run(b, "run-1", "cpu", None)
        params = [{"operation": "set", "data": {"model": {"lr": 0.1, "layers": [1, 2]}, "seed": 1}},
                  {"operation": "extend", "data": {"model": {"dropout": 0.5}}},
                  {"operation": "update", "key": "model.lr", "value": 0.01}]
        await store.apply_batch(a, r2, "parameters", "c1:params", 0, 3, params)
        logs = [{"timestamp": 1000.0 + i, "level": ("INFO", "ERROR")[i % 2], "message": f"line {i}",
                 "context": {"i": i} if i % 3 else None} for i in range(7)]
        await store.apply_batch(a, r2, "logs", "c1:logs", 0, 70, logs)
        await store.put_file(a, "model.pt", 11, "ab" * 32)
        await store.put_file(a, "plots/loss.png", 5, "cd" * 32)
        await store.put_file(c, "model.pt", 11, "ab" * 32)
        await store.set_environment(a, {"git": {"commit": "abc", "dirty": True}, "packages": {"numpy": "2.0"}})
        # loss: three 5000-point batches (separate chunks, block summaries) and a small tail the next batch merges into.
        ends, offset = [], 0
        for first, count in ((0, 5000), (5000, 5000), (10000, 5000), (15000, 100)):
            events = [{"timestamp": 2000.0 + s, "step": s, "metrics": {"loss": _value(s), "ok": s % 2 == 0,
                                                                      "count": s}} for s in range(first, first + count)]
            result = await store.apply_batch(a, r2, "metrics", "c1:metrics", offset, offset + count * 10, events)
            offset = result.acked
            ends.append(offset)
        # lr: out of order steps and points without a step (an unordered series); big ints keep their exact value.
        events = [{"timestamp": None, "step": s, "metrics": {"lr": (s or 0) * 0.5, "big": 2**62 + (s or 0)}}
                  for s in (5, 3, None, 4)]
        await store.apply_batch(b, rb, "metrics", "c2:metrics", 0, 4, events)
        return {"experiments": (a, b, c), "runs": (r1, r2, rb), "metric_ends": ends, "params": params}
    finally:
        await store.close()


def _plain(value):
    """NaN never equals itself: compare it as a string."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _answers(store, experiment_ids) -> dict:
    """Every read the server offers, for every experiment."""
    out = {"list": await store.list_experiments(None, None, None, 100, 0),
           "alice": await store.list_experiments(frozenset({"alice"}), "vision", None, 100, 0),
           "namespaces": await store.list_namespaces(), "workspaces": await store.list_workspaces("alice")}
    for eid in experiment_ids:
        runs = await store.list_runs(eid)
        series = {}
        for name in await store.metric_names(eid):
            # Downsampled first: from block summaries only while the series cache is cold.
            down = await store.metric_series(eid, name, None, None, max_points=4)
            full = await store.metric_series(eid, name, None, None)
            ranged = await store.metric_series(eid, name, 100, 9000)
            steps, stamps = await store.metric_step_times(eid, name, 50)
            series[name] = {
                "full": [a.tolist() for a in (full.steps, full.values, full.kinds)],
                "ranged": [a.tolist() for a in (ranged.steps, ranged.values, ranged.kinds)],
                "down": series_result(name, down, 4, True), "envelope": isinstance(down, Envelope),
                "times": [steps.tolist(), stamps.tolist()]}
        out[eid] = {"experiment": await store.get_experiment(eid), "runs": runs,
                    "run_records": [await store.get_run(r["id"]) for r in runs],
                    "params": await store.parameter_ops(eid), "logs": await store.logs(eid, None, None),
                    "errors": await store.logs(eid, "ERROR", 2), "files": await store.list_files(eid),
                    "offsets": await store.stream_offsets(eid), "last": await store.last_metrics(eid),
                    "environment": await store.environment(eid),
                    "series": series}
    return _plain(out)


async def _row_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
    finally:
        await conn.close()


async def test_copy_answers_the_same_and_resumes_streams_exactly_once(tmp_path):
    """Every read matches after the copy; a continuing batch is stored, a replayed one is a duplicate."""
    path = str(tmp_path / "ml-dash.sqlite3")
    seeded = await _seed(path)
    a, b, c = seeded["experiments"]
    with postgres_schema_url() as url:
        counts, blobs = await copy_database(f"sqlite:///{path}", url, echo=lambda line: None)
        assert counts == {"experiments": 3, "runs": 3, "streams": 4, "metric_names": 5, "metric_chunks": 14,
                          "parameters": 3, "logs": 7, "console": 0, "files": 3, "experiment_environments": 1,
                          "alert_rules": 0, "alerts": 0, "alert_deliveries": 0, "alert_attempts": 0,
                          "alert_heartbeats": 0, "media": 0, "media_histograms": 0} and blobs == 2
        source, target = open_storage(f"sqlite:///{path}", "unused"), open_storage(url, "unused")
        await source.open()
        await target.open()
        try:
            expected = await _answers(source, (a, b, c))
            assert await _answers(target, (a, b, c)) == expected
            assert expected[a]["series"]["loss"]["envelope"] and len(expected[a]["series"]["loss"]["full"][0]) == 15100
            assert expected[a]["last"] == {"count": 15099, "loss": _plain(_value(15099)), "ok": False}
            assert expected[b]["last"]["big"] == 2**62 + 4
            assert expected[a]["environment"]["git"] == {"commit": "abc", "dirty": True}
            assert replay(expected[a]["params"])["model"] == {"lr": 0.01, "layers": [1, 2], "dropout": 0.5}

            # The client resumes against the new server: its next batch continues the copied offset...
            r1, r2, _ = seeded["runs"]
            end = seeded["metric_ends"][-1]
            events = [{"timestamp": 9000.0, "step": s, "metrics": {"loss": 1.0, "fresh": s}}
                      for s in range(15100, 15110)]
            result = await target.apply_batch(a, r2, "metrics", "c1:metrics", end, end + 100, events)
            assert (result.duplicate, result.acked, result.stored) == (False, end + 100, 10)
            # ...and a batch it sent before the switch (replayed after a lost answer) is not stored again.
            again = await target.apply_batch(a, r2, "metrics", "c1:metrics", 0, seeded["metric_ends"][0], [])
            assert again.duplicate and again.acked == end + 100
            series = await target.metric_series(a, "loss", None, None)
            assert series.steps.tolist() == list(range(15110))
            assert await target.metric_names(a) == ["count", "fresh", "loss", "ok"]
            # New rows of every kind get fresh keys: the sequences continue past the copied ones.
            await target.apply_batch(a, r2, "parameters", "c1:params", 3, 4, [{"operation": "update", "key": "k",
                                                                               "value": 1}])
            await target.apply_batch(a, None, "logs", "c1:logs", 70, 80, [{"timestamp": 1.0, "level": "INFO",
                                                                           "message": "after", "context": None}])
            assert (await target.parameter_ops(a))[-1] == {"operation": "update", "key": "k", "value": 1}
            assert (await target.logs(a, None, 1))[0]["message"] == "after"
            d, created = await target.create_experiment("carol", "w", "", "new", None, None)
            await target.create_run(d, "run-1", None, None)
            assert created and (await target.get_experiment(d))["pk"] == 4
        finally:
            await source.close()
            await target.close()


async def test_copy_keeps_alert_rules_alerts_and_their_deliveries(tmp_path):
    path = str(tmp_path / "ml-dash.sqlite3")
    source = open_storage(f"sqlite:///{path}", "unused")
    await source.open()
    rule = {"namespace": "alice", "name": "nan", "kind": "nonfinite", "params": {"metric": "*"}, "level": "ERROR",
            "webhook_url": "https://hooks.example.com/x", "webhook_format": "generic", "secret": "s", "cooldown": 0.0}
    try:
        await source.create_alert_rule(rule)
        [made] = await source.alert_rules()
        alert_id = await source.open_alert(made["pk"], "alice", "e1", "r1", "loss", "ERROR", "t", "x", False, 1.0)
        [delivery] = await source.claim_deliveries(2.0, 30.0, 10)
        await source.finish_attempt(delivery["pk"], 2.0, 200, None, 0.01, None, False)
        await source.save_heartbeats({"r1": (1.0, 2.0)})
        expected = (await source.alert_rules(), await source.list_alerts(None), await source.alert_attempts(alert_id))
    finally:
        await source.close()
    with postgres_schema_url() as url:
        counts, _ = await copy_database(f"sqlite:///{path}", url, echo=lambda line: None)
        assert {k: v for k, v in counts.items() if k.startswith("alert")} == {
            "alert_rules": 1, "alerts": 1, "alert_deliveries": 1, "alert_attempts": 1, "alert_heartbeats": 1}
        target = open_storage(url, "unused")
        await target.open()
        try:
            assert (await target.alert_rules(), await target.list_alerts(None),
                    await target.alert_attempts(alert_id)) == expected
            # The sequences continue past the copied keys, and the copied open alert still dedupes.
            assert await target.open_alert(made["pk"], "alice", "e1", "r1", "loss", "ERROR", "t", "x", False, 3.0) \
                is None
            assert await target.open_alert(made["pk"], "alice", "e1", "r1", "acc", "ERROR", "t", "x", False, 3.0)
            assert len(await target.claim_deliveries(4.0, 30.0, 10)) == 1
        finally:
            await target.close()


async def test_copy_into_non_empty_target_is_refused(tmp_path):
    """A second copy into a database that holds experiments is refused and leaves it unchanged."""
    path = str(tmp_path / "ml-dash.sqlite3")
    await _seed(path)
    with postgres_schema_url() as url:
        await copy_database(str(tmp_path), url, echo=lambda line: None)  # a data directory works as --from too
        before = await _row_counts(url)
        with pytest.raises(CopyError, match="already holds 3 experiment"):
            await copy_database(f"sqlite:///{path}", url, echo=lambda line: None)
        assert await _row_counts(url) == before


async def test_failed_copy_leaves_target_empty(tmp_path):
    """A row PostgreSQL refuses (a NUL character in a log) rolls the whole copy back."""
    path = str(tmp_path / "ml-dash.sqlite3")
    await _seed(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE logs SET message = ? WHERE pk = (SELECT MAX(pk) FROM logs)", ("bad\x00byte",))
    conn.close()
    with postgres_schema_url() as url:
        with pytest.raises(asyncpg.PostgresError):
            await copy_database(path, url, echo=lambda line: None)
        assert set((await _row_counts(url)).values()) == {0}


async def test_newer_source_schema_is_refused(tmp_path):
    """A database written by a newer ml-dash is not guessed at."""
    path = str(tmp_path / "ml-dash.sqlite3")
    await _seed(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    conn.close()
    with postgres_schema_url() as url:
        with pytest.raises(CopyError, match="schema version 99"):
            await copy_database(path, url, echo=lambda line: None)


async def test_older_source_schema_is_migrated_first(tmp_path, monkeypatch):
    """An older ml-dash's database (per-point metric rows) is migrated as the server would do, then copied."""
    from ml_dash.server.storage.sqlite import migrations as _sqlite_schema

    path = str(tmp_path / "ml-dash.sqlite3")
    latest = _sqlite_schema.MIGRATIONS
    monkeypatch.setattr(_sqlite_schema, "MIGRATIONS", latest[:2])
    conn = sqlite3.connect(path, isolation_level=None)
    _sqlite_schema.migrate(conn)
    monkeypatch.setattr(_sqlite_schema, "MIGRATIONS", latest)
    conn.execute("INSERT INTO experiments VALUES (1, 'e1', 'ns', 'ws', '', 'p', NULL, NULL, 1.5)")
    conn.execute("INSERT INTO metric_names (pk, experiment_pk, name, last_value, last_kind) "
                 "VALUES (1, 1, 'loss', 4.5, 0)")
    conn.executemany("INSERT INTO metrics VALUES (1, ?, 2.0, ?, 0, NULL)", [(s, s * 0.5) for s in range(10)])
    conn.close()
    lines = []
    with postgres_schema_url() as url:
        counts, _ = await copy_database(path, url, echo=lines.append)
        assert lines == [f"source schema migrated from version 2 to {latest[-1][0]} (as the server does)"]
        assert counts["metric_chunks"] == 1
        target = open_storage(url, "unused")
        await target.open()
        try:
            series = await target.metric_series("e1", "loss", None, None)
            assert series.values.tolist() == [s * 0.5 for s in range(10)]
            assert await target.last_metrics("e1") == {"loss": 4.5}
        finally:
            await target.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_dash.cli", "server", "copy", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})


async def test_cli_copy_prints_summary_and_rejects_bad_usage(tmp_path):
    """``ml-dash server copy``: a summary and exit 0; exit 2 for bad arguments, 1 for a refused target."""
    await _seed(str(tmp_path / "ml-dash.sqlite3"))
    with postgres_schema_url() as url:
        done = _cli("--from", str(tmp_path), "--to", url)
        assert done.returncode == 0, done.stderr
        assert "metric_chunks" in done.stdout and "14 rows" in done.stdout and " s\n" in done.stdout
        assert "blobs" in done.stdout and "--files s3://" in done.stdout and ":***@" in done.stdout
        assert ":ml_dash@" not in done.stdout  # the password is not printed
        again = _cli("--from", str(tmp_path), "--to", url)
        assert again.returncode == 1 and "already holds" in again.stderr
    assert _cli("--from", str(tmp_path)).returncode == 2  # --to missing
    wrong = _cli("--from", str(tmp_path), "--to", "mysql://x/y")
    assert wrong.returncode == 2 and "--to must be" in wrong.stderr
    missing = _cli("--from", str(tmp_path / "nowhere"), "--to", "postgresql://x/y")
    assert missing.returncode == 2 and "no SQLite database" in missing.stderr
