"""Experiment pages in the database (filter, order, limit, total), tags, notes and soft delete, on every backend."""
from __future__ import annotations

import math

import pytest

from ml_dash.format.filter import matches, parse_filter, parse_order_by, sort_records
from ml_dash.format.params import replay

# (prefix, params operations, last metrics, status of its run or None, tags)
RUNS = [
    ("resnet-1", [{"operation": "set", "data": {"lr": 0.001, "model": {"layers": 50, "name": "resnet"}}}],
     {"loss": 0.25, "val_loss": 0.3}, "COMPLETED", ["baseline", "resnet"]),
    ("resnet-2", [{"operation": "set", "data": {"lr": 0.01, "model": {"layers": 101}}},
                  {"operation": "update", "key": "model.name", "value": "resnet"}],
     {"loss": 0.5, "val_loss": math.nan}, "FAILED", ["resnet"]),
    ("vit-1", [{"operation": "set", "data": {"lr": "auto", "model": {"layers": 12}, "flag": True}}],
     {"loss": 0.1, "val_loss": 0.2}, "COMPLETED", []),
    ("vit-2", [{"operation": "set", "data": {"lr": 0.0001}}, {"operation": "extend", "data": {"flag": False}}],
     {"loss": 7, "val_loss": None}, "RUNNING", ["Baseline"]),
    ("ResNet_3", [], {}, None, ["baseline"]),
    ("mlp", [{"operation": "set", "data": {"lr": 0.1, "model": {"layers": 2, "name": "mlp"}}}],
     {"loss": math.inf, "acc": True}, "COMPLETED", ["50%"]),
]

FILTERS = [
    None,
    "params.lr < 0.01 and status = 'completed'",
    "params.lr < 0.01 or status = 'FAILED'",
    "metrics.val_loss <= 0.3",
    "metrics.val_loss != 0.3",
    "metrics.loss > 1",
    "metrics.acc = 1",
    "tags contains 'baseline'",
    "tags contains 'Baseline'",
    "prefix like 'resnet%'",
    "prefix like '%-_'",
    "prefix like 'ResNet\\_%'",
    "tags contains '50%' or prefix like 'v%'",
    "params.model.name = 'resnet'",
    "params.model.name != 'resnet'",
    "params.lr = 'auto'",
    "params.lr >= 'a'",
    "params.flag = true",
    "params.flag != true",
    "params.model.layers >= 50 and (status = 'completed' or status = 'failed')",
    "params.missing = 1",
    "status != 'running'",
    "started_at > 0",
    "completed_at > 0",
    "namespace = 'alice' and workspace = 'vision'",
]
ORDERS = [None, "params.lr desc", "params.lr", "metrics.loss asc", "metrics.val_loss desc, prefix",
          "params.model.layers desc, metrics.loss", "status, startedAt desc", "prefix desc", "notes"]


async def _populate(storage) -> dict[str, str]:
    ids = {}
    for i, (prefix, ops, metrics, status, tags) in enumerate(RUNS):
        experiment_id, _ = await storage.create_experiment("alice", "vision", "", prefix, None, None)
        ids[prefix] = experiment_id
        if status is not None:
            run_id = await storage.create_run(experiment_id, f"c{i}", None, 1000.0 + i)
            if status != "RUNNING":
                await storage.update_run(run_id, status, None, 2000.0 + i)
        if ops:
            await storage.apply_batch(experiment_id, None, "parameters", "p", 0, 10,
                                      [{"timestamp": 1.0, **op} for op in ops])
        if metrics:
            await storage.apply_batch(experiment_id, None, "metrics", "m", 0, 10,
                                      [{"timestamp": 1.0, "step": 0, "metrics": {k: 0 for k in metrics}},
                                       {"timestamp": 2.0, "step": 1, "metrics": metrics}])
        if tags:
            await storage.edit_tags(experiment_id, replace=tags)
    other, _ = await storage.create_experiment("bob", "vision", "sub/dir", "resnet-1", None, None)
    ids["bob"] = other
    return ids


async def _records(storage, ids) -> list[dict]:
    out = []
    for experiment_id in ids.values():
        record = await storage.get_experiment(experiment_id)
        record["last_metrics"] = await storage.last_metrics(experiment_id)
        out.append(record)
    return out


async def test_filters_and_orders_agree_with_the_python_evaluator(storage):
    """Every filter × order runs in SQL and gives the experiments, in the order, that format.filter's Python gives."""
    ids = await _populate(storage)
    records = await _records(storage, ids)
    for text in FILTERS:
        node = parse_filter(text)
        for order in ORDERS:
            keys = parse_order_by(order)
            expected = [r["id"] for r in sort_records([r for r in records if matches(node, r)],
                                                      keys or parse_order_by("startedAt desc"))]
            total, page = await storage.experiment_page(None, filter=node, order_by=keys, limit=100)
            assert [r["id"] for r in page] == expected, (text, order)
            assert total == len(expected)
    # sanity: the filters above do select different things
    assert len({tuple(r["id"] for r in records if matches(parse_filter(t), r)) for t in FILTERS}) > 15


async def test_page_limit_offset_total_and_scope(storage):
    """limit/offset page through a stable order; total counts all matches; namespaces/workspace/directory scope."""
    ids = await _populate(storage)
    keys = parse_order_by("prefix")
    seen = []
    for offset in range(0, 7, 2):
        total, page = await storage.experiment_page(None, order_by=keys, limit=2, offset=offset)
        assert total == 7
        seen += [r["prefix"] for r in page]
    assert seen == sorted(r[0] for r in RUNS + [("resnet-1",)])
    assert (await storage.experiment_page(frozenset(["bob"])))[0] == 1
    total, page = await storage.experiment_page(None, directory="sub/dir")
    assert total == 1 and page[0]["id"] == ids["bob"]
    assert (await storage.experiment_page(frozenset(["alice", "bob"]), workspace="other"))[0] == 0


async def test_params_column_follows_ingest(storage):
    """The materialised params equal the replay of every stored operation, batch after batch."""
    ids = await _populate(storage)
    experiment_id = ids["resnet-2"]
    await storage.apply_batch(experiment_id, None, "parameters", "p", 10, 20,
                              [{"timestamp": 2.0, "operation": "extend", "data": {"model": {"dropout": 0.1}}}])
    record = await storage.get_experiment(experiment_id)
    assert record["params"] == replay(await storage.parameter_ops(experiment_id))
    assert record["params"]["model"] == {"layers": 101, "name": "resnet", "dropout": 0.1}


async def test_tags_notes_and_soft_delete(storage):
    """Tags edit without duplicates, notes set and clear, a deleted experiment is hidden until restored or until a
    new run starts in it (a retried create of an existing run does not restore it)."""
    ids = await _populate(storage)
    experiment_id = ids["vit-1"]
    assert await storage.edit_tags(experiment_id, add=["a", "b", "a"]) == ["a", "b"]
    assert await storage.edit_tags(experiment_id, remove=["a", "zzz"]) == ["b"]
    with pytest.raises(ValueError, match="non-empty"):
        await storage.edit_tags(experiment_id, add=[""])
    await storage.set_notes(experiment_id, "looks good")
    assert (await storage.get_experiment(experiment_id))["notes"] == "looks good"
    deleted_at = await storage.set_deleted(experiment_id, True)
    assert deleted_at is not None and await storage.set_deleted(experiment_id, True) == deleted_at
    listed = [e["id"] for e in await storage.list_experiments(None, None, None, 100, 0)]
    assert experiment_id not in listed and len(listed) == 6
    total, page = await storage.experiment_page(None)
    assert total == 6 and experiment_id not in [e["id"] for e in page]
    total, page = await storage.experiment_page(None, filter=parse_filter("tags contains 'b'"), include_deleted=True)
    assert [e["id"] for e in page] == [experiment_id] and page[0]["deleted_at"] == deleted_at
    assert await storage.set_deleted(experiment_id, False) is None
    assert (await storage.experiment_page(None))[0] == 7
    await storage.set_deleted(experiment_id, True)
    await storage.create_run(experiment_id, "new", None, None)
    assert (await storage.get_experiment(experiment_id))["deleted_at"] is None
    await storage.set_deleted(experiment_id, True)
    await storage.create_run(experiment_id, "new", None, None)  # the same run again (a retry)
    assert (await storage.get_experiment(experiment_id))["deleted_at"] is not None


async def test_sqlite_database_at_version_5_upgrades(tmp_path):
    """An SQLite data dir from before tags/params columns gets them, params filled from the stored operations."""
    import sqlite3

    from ml_dash.server.storage.sqlite.migrations import MIGRATIONS
    from ml_dash.server.storage.sqlite.storage import SQLiteStorage

    path = str(tmp_path / "v5.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, step in MIGRATIONS[:5]:
        step(conn) if callable(step) else conn.executescript(step)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute("INSERT INTO experiments (pk, id, namespace, workspace, directory, prefix, created_at) "
                 "VALUES (1, 'e1', 'a', 'w', '', 'p', 0), (2, 'e2', 'a', 'w', '', 'q', 0)")
    conn.executemany("INSERT INTO parameters (experiment_pk, record) VALUES (1, ?)",
                     [('{"operation": "set", "data": {"lr": 0.1, "m": {"a": 1}}}',),
                      ('{"operation": "update", "key": "m.b", "value": 2}',)])
    conn.close()
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        assert (await storage.get_experiment("e1"))["params"] == {"lr": 0.1, "m": {"a": 1, "b": 2}}
        total, page = await storage.experiment_page(None, filter=parse_filter("params.m.b = 2"))
        assert total == 1 and page[0]["id"] == "e1" and page[0]["tags"] == []
        assert (await storage.get_experiment("e2"))["params"] == {}
    finally:
        await storage.close()


async def test_postgres_database_at_version_2_upgrades():
    """A PostgreSQL schema from before tags/params columns gets them, params filled from the stored operations."""
    import asyncpg

    from ml_dash.server.storage.postgres.migrations import MIGRATIONS
    from ml_dash.server.storage.postgres.storage import PostgresStorage

    from ..conftest import POSTGRES_URL, postgres_schema_url

    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need ML_DASH_TEST_POSTGRES")
    with postgres_schema_url() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                               "applied_at DOUBLE PRECISION NOT NULL)")
            for version, step in MIGRATIONS[:2]:
                await (step(conn) if callable(step) else conn.execute(step))
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, 0)", version)
            await conn.execute("INSERT INTO experiments (pk, id, namespace, workspace, directory, prefix, created_at) "
                               "VALUES (1, 'e1', 'a', 'w', '', 'p', 0)")
            await conn.execute("INSERT INTO parameters (experiment_pk, record) VALUES "
                               "(1, '{\"operation\": \"set\", \"data\": {\"lr\": 0.1}}')")
        finally:
            await conn.close()
        storage = PostgresStorage(url)
        await storage.open()
        try:
            assert (await storage.get_experiment("e1"))["params"] == {"lr": 0.1}
            assert (await storage.experiment_page(None, filter=parse_filter("params.lr > 0.05")))[0] == 1
        finally:
            await storage.close()


async def test_last_metrics_many_equals_last_metrics_one_by_one(storage):
    """The page loader's one query answers what last_metrics answers per experiment (NaN, bool, int, inf kept)."""
    ids = await _populate(storage)
    many = await storage.last_metrics_many(list(ids.values()))
    for experiment_id in ids.values():
        one = await storage.last_metrics(experiment_id)
        assert repr(many.get(experiment_id, {})) == repr(one)
    assert await storage.last_metrics_many([]) == {}


LIKES = ["resnet%", "%-_", "ResNet\\_%", "%", "v_t%", "%1"]


def _random_filter(rng) -> str:
    """A random filter over the fields and values RUNS has (and some it has not), as text."""
    fields = {"params.lr": [0.001, 0.01, 0.1, "auto", "x", 0], "params.model.layers": [2, 12, 50, 101],
              "params.model.name": ["resnet", "mlp", "z"], "params.flag": [True, False, 1],
              "metrics.loss": [0.1, 0.25, 7, 1e9], "metrics.val_loss": [0.2, 0.3, -1], "metrics.acc": [1, 0],
              "status": ["completed", "FAILED", "running", "x"], "prefix": ["resnet-1", "vit-2", "a"],
              "started_at": [1000, 1002.5, 3000], "completed_at": [2000, 2003]}
    ops = ["=", "!=", "<", "<=", ">", ">="]

    def literal(value):
        return ("true" if value else "false") if isinstance(value, bool) else repr(value) if isinstance(value, str) \
            else str(value)

    def comparison():
        roll = rng.random()
        if roll < 0.1:
            return f"tags contains {rng.choice(['baseline', 'resnet', 'Baseline', '50%', 'none'])!r}"
        if roll < 0.2:
            return "prefix like " + repr(rng.choice(LIKES))
        field = rng.choice(sorted(fields))
        value = rng.choice(fields[field])
        op = rng.choice(["=", "!="]) if isinstance(value, bool) else rng.choice(ops)
        if field.startswith("metrics.") and isinstance(value, str) or \
                field in ("status", "prefix") and not isinstance(value, str) or \
                field.endswith("_at") and isinstance(value, str):
            value = fields[field][0]
        return f"{field} {op} {literal(value)}"

    def expression(depth):
        if depth > 2 or rng.random() < 0.4:
            return comparison()
        joiner = rng.choice([" and ", " or "])
        return "(" + joiner.join(expression(depth + 1) for _ in range(rng.randint(2, 3))) + ")"

    return expression(0)


async def test_random_filters_agree_with_the_python_evaluator(storage):
    """300 random filters (and/or nesting, every field kind, type mismatches) select in SQL what Python selects."""
    import random

    rng = random.Random(16)
    ids = await _populate(storage)
    records = await _records(storage, ids)
    seen = set()
    for _ in range(300):
        text = _random_filter(rng)
        node = parse_filter(text)
        expected = sorted(r["id"] for r in records if matches(node, r))
        total, page = await storage.experiment_page(None, filter=node)
        assert sorted(r["id"] for r in page) == expected and total == len(expected), text
        seen.add(tuple(expected))
    assert len(seen) > 20  # the filters select many different subsets, not all or nothing


BIG = 2**53
# prefix → params: ints past 2**53 (float8 rounds them), unsigned 64-bit ints, floats beside them, odd keys
ODD_RUNS = {"b0": {"big": BIG, "a\\b": 1, "t\tab": "x"}, "b1": {"big": BIG + 1, "a\\b": 2},
            "b2": {"big": float(BIG), "q'\\": 1}, "b3": {"big": BIG + 2}, "b4": {"big": 2**64 - 1},
            "b5": {"big": 2**63}, "b6": {"big": float(2**63)}, "b7": {"big": 2**63 + 1}, "b8": {"big": -2**63},
            "b9": {"big": 0.5, "a.b": {"c": 1}, "é\n": True}, "b10": {"big": 2**64 - 2048},
            "b11": {"big": float(2**64 - 2048)}, "b12": {"big": 2**60 + 1}, "b13": {"big": float(2**60)}}


async def _odd(storage) -> list[dict]:
    for prefix, params in ODD_RUNS.items():
        experiment_id, _ = await storage.create_experiment("odd", "w", "", prefix, None, None)
        await storage.apply_batch(experiment_id, None, "parameters", "p", 0, 1,
                                  [{"timestamp": 1.0, "operation": "set", "data": params}])
    return (await storage.experiment_page(frozenset(["odd"]), limit=100))[1]


@pytest.mark.parametrize("text", [
    f"params.big = {BIG + 1}", f"params.big = {BIG}", f"params.big != {BIG}", f"params.big > {BIG}",
    f"params.big <= {BIG + 1}", "params.big = 9223372036854775808", "params.big > 9223372036854775808",
    "params.big >= 9223372036854775807", "params.big < 18446744073709551615", "params.big = 18446744073709551615",
    "params.big = 9.223372036854776e18", "params.big < 9.223372036854776e18", "params.big = -9223372036854775808",
    f"params.big = {2**64 - 2048}", f"params.big > {2**64 - 2049}", f"params.big = {2**60}", f"params.big > {2**60}",
    "params.big = 1.152921504606847e18", "params.big < 1.8446744073709552e19", "params.big = 0.5",
    "params.`a\\b` = 1", "params.`a\\b` >= 1", "params.`t\tab` = 'x'", "params.`q'\\` = 1", "params.`a.b`.c = 1",
    "params.`é\n` = true"])
async def test_big_ints_and_odd_keys_agree_with_the_python_evaluator(storage, text):
    """PostgreSQL compared params as float8 (2**53 + 1 matched 2**53 too); SQLite read unsigned 64-bit ints as floats
    and never found a key holding a backslash or a tab. Each filter now selects what Python selects, on both."""
    records = await _odd(storage)
    node = parse_filter(text)
    expected = sorted(r["prefix"] for r in records if matches(node, r))
    total, page = await storage.experiment_page(frozenset(["odd"]), filter=node, limit=100)
    assert sorted(r["prefix"] for r in page) == expected and total == len(expected), (text, expected)
    if text == f"params.big = {BIG + 1}" or text.startswith("params.`") and " = " in text:
        assert len(expected) == 1


@pytest.mark.parametrize("order", ["params.big desc", "params.big"])
async def test_big_ints_order_exactly(storage, order):
    """orderBy params.big: exact order among ints past 2**53, unsigned 64-bit ints and floats, as in Python."""
    records = await _odd(storage)
    keys = parse_order_by(order)
    expected = [r["prefix"] for r in sort_records(records, keys)]
    page = (await storage.experiment_page(frozenset(["odd"]), order_by=keys, limit=100))[1]
    assert [r["prefix"] for r in page] == expected


@pytest.mark.parametrize("text", ["metrics.m < 9223372036854779808", "metrics.m > 9223372036854775809",
                                  "metrics.m = 9223372036854775807", "metrics.m > 9007199254740992",
                                  "metrics.m = 9007199254740993", "metrics.m <= 9007199254740992",
                                  "started_at < 9223372036854779808", "started_at > 9007199254740993"])
async def test_metrics_and_times_past_2_63_compare_exactly(storage, text):
    """A metric float just past 2**63 against an int literal past 2**63, and ints past 2**53, as in Python."""
    values = [2.0**63 + 2048, 2**63 - 1, 2**53 + 1, float(2**53), 2**53, 1.5]
    for i, value in enumerate(values):
        experiment_id, _ = await storage.create_experiment("m", "w", "", f"p{i}", None, None)
        await storage.create_run(experiment_id, "c", None, float(value))
        await storage.apply_batch(experiment_id, None, "metrics", "m", 0, 1,
                                  [{"timestamp": 1.0, "step": 0, "metrics": {"m": value}}])
    records = (await storage.experiment_page(frozenset(["m"]), limit=100))[1]
    last = await storage.last_metrics_many([r["id"] for r in records])
    node = parse_filter(text)
    expected = sorted(r["prefix"] for r in records if matches(node, {**r, "last_metrics": last[r["id"]]}))
    assert sorted(r["prefix"] for r in (await storage.experiment_page(frozenset(["m"]), filter=node))[1]) == expected
