"""The three evaluators of a filter and an order agree: ``format.filter``'s Python (the local reader's), SQLite's SQL
and PostgreSQL's SQL select the same experiments in the same order, over random runs (parameters of every type, big
ints, floats, strings with odd characters, odd keys, missing keys; tags; notes; status; metrics) and random filters
and orders. PostgreSQL joins in when ML_DASH_TEST_POSTGRES is set. ``scripts/fuzz.sh -k agreement`` runs a campaign.
"""
from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ml_dash.format.filter import DEFAULT_ORDER, FilterError, matches, parse_filter, parse_order_by, sort_records
from ml_dash.server.ingest import storable_json, metric_value
from ml_dash.server.storage.registry import open_storage
from tests.fuzz.conftest import examples
from tests.server.conftest import POSTGRES_URL, postgres_schema_url

KEYS = ["a", "big", "a\\b", "t\tab", "é", "x.y", "q'", "sp ace", "%_", "[0]"]
METRICS = ["loss", "a/b", "acc"]
CHARS = "ab%_\\'\"\t\n[*?é😀 .\x00"  # like's and GLOB's specials, escapes, quotes, NUL (stored as U+FFFD)
EDGE_INTS = [0, 1, -1, 2**53, 2**53 + 1, 2**53 - 1, 2**60 + 1, 2**62 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1,
             2**64 - 2049, 2**63 + 4000, -2**63, -2**63 + 1, -2**53 - 1]
EDGE_FLOATS = [0.5, -0.0, 0.1, float(2**53), float(2**60), 2.0**63, 2.0**63 + 2048, 2.0**64, 1e23, -2.0**63, 1e-300,
               1.5e300]

texts = st.text(st.sampled_from(CHARS), max_size=6)
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-2**63, 2**64 - 1), st.integers(-5, 5))
floats = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(width=64), st.integers(-5, 5).map(float))
values = st.one_of(st.none(), st.booleans(), ints, floats, texts, st.just([1, "a"]),
                   st.just({"n": 1}))
params = st.dictionaries(st.sampled_from(KEYS), values, max_size=5)
metric_values = st.one_of(st.sampled_from(EDGE_INTS[:10]), st.integers(-2**63, 2**63 - 1), floats, st.booleans(),
                          st.none())
clean_texts = st.text(st.sampled_from(CHARS.replace("\x00", "")), max_size=6)
runs = st.lists(st.fixed_dictionaries({
    "prefix": clean_texts, "params": params, "metrics": st.dictionaries(st.sampled_from(METRICS), metric_values),
    "status": st.sampled_from([None, "RUNNING", "COMPLETED", "FAILED"]), "notes": st.none() | clean_texts,
    "tags": st.lists(clean_texts.filter(str.strip), max_size=3, unique=True),
    "started": st.sampled_from([1000.0, 1000.5, 2000.0])}), min_size=1, max_size=6)


def literal_text(value) -> str:
    """The filter language's spelling of a literal: in a string only \\' and \\\\ are escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value) if isinstance(value, float) else str(value)


def key_text(key: str) -> str:
    return f"params.`{key}`"


finite = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(allow_nan=False, allow_infinity=False))
numbers = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-2**63, 2**64 - 1), finite)
patterns = st.text(st.sampled_from("ab%_\\'\tyé😀*?["), max_size=6)
ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


@st.composite
def comparisons(draw) -> str:
    kind = draw(st.sampled_from(["param", "param", "param", "metric", "tags", "like", "attr", "time"]))
    if kind == "tags":
        return f"tags contains {literal_text(draw(clean_texts.filter(str.strip)))}"
    if kind == "like":
        field = draw(st.sampled_from([key_text(k) for k in KEYS] + ["prefix", "notes", "status"]))
        pattern = draw(patterns)
        if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
            pattern += "\\"  # never a lone trailing backslash (the parser refuses it)
        return f"{field} like {literal_text(pattern)}"
    if kind == "metric":
        return f"metrics.{draw(st.sampled_from(METRICS))} {draw(ops)} {literal_text(draw(numbers))}"
    if kind == "attr":
        field = draw(st.sampled_from(["prefix", "notes", "status"]))
        value = draw(st.sampled_from(["completed", "RUNNING", "failed"]) if field == "status" else clean_texts)
        return f"{field} {draw(ops)} {literal_text(value)}"
    if kind == "time":
        return f"{draw(st.sampled_from(['started_at', 'completed_at']))} {draw(ops)} " \
               f"{literal_text(draw(st.sampled_from([1000, 1000.5, 2000.0, 3000])))}"
    value = draw(st.one_of(st.booleans(), numbers, clean_texts))
    op = draw(st.sampled_from(["=", "!="]) if isinstance(value, bool) else ops)
    return f"{key_text(draw(st.sampled_from(KEYS)))} {op} {literal_text(value)}"


filters = st.recursive(comparisons(), lambda inner: st.lists(inner, min_size=2, max_size=3).flatmap(
    lambda items: st.sampled_from([" and ", " or "]).map(lambda joiner: "(" + joiner.join(items) + ")")),
    max_leaves=5)
order_keys = st.sampled_from([key_text(k) for k in KEYS] + [f"metrics.{m}" for m in METRICS]
                             + ["prefix", "notes", "status", "started_at", "completed_at"])
orders = st.lists(st.tuples(order_keys, st.sampled_from(["", " asc", " desc"])), max_size=2).map(
    lambda keys: ", ".join(k + d for k, d in keys))


class Backends:
    """SQLite (and PostgreSQL when configured) opened once for a test, on one event loop; each example writes its
    runs into a namespace of its own."""

    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        self.stores = {"sqlite": open_storage(f"sqlite:///{tmp_path}/agree.sqlite3", str(tmp_path / "x"))}
        self._schema = None
        if POSTGRES_URL:
            self._schema = postgres_schema_url()
            self.stores["postgresql"] = open_storage(self._schema.__enter__(), str(tmp_path / "y"))
        for store in self.stores.values():
            self.run(store.open())
        self.namespaces = (f"n{i}" for i in itertools.count())

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        for store in self.stores.values():
            self.run(store.close())
        if self._schema is not None:
            self._schema.__exit__(None, None, None)
        self.loop.close()

    async def populate(self, store, namespace: str, generated: list[dict]) -> list[dict]:
        for i, run in enumerate(generated):
            experiment_id, _ = await store.create_experiment(namespace, "w", "", f"{run['prefix']}#{i}", None, None)
            if run["status"] is not None:
                run_id = await store.create_run(experiment_id, "c", None, run["started"])
                if run["status"] != "RUNNING":
                    await store.update_run(run_id, run["status"], None, run["started"] + 1000)
            if run["params"]:
                await store.apply_batch(experiment_id, None, "parameters", "p", 0, 1, [
                    {"timestamp": 1.0, "operation": "set", "data": storable_json(run["params"])}])
            if run["metrics"]:
                await store.apply_batch(experiment_id, None, "metrics", "m", 0, 1, [
                    {"timestamp": 1.0, "step": 0, "metrics": {k: metric_value(k, v) for k, v in
                                                             run["metrics"].items()}}])
            if run["tags"]:
                await store.edit_tags(experiment_id, replace=run["tags"])
            if run["notes"] is not None:
                await store.set_notes(experiment_id, run["notes"])
        records = (await store.experiment_page(frozenset([namespace]), limit=1000))[1]
        last = await store.last_metrics_many([r["id"] for r in records])
        return [{**r, "last_metrics": last.get(r["id"], {})} for r in records]


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    opened = Backends(tmp_path_factory.mktemp("agreement"))
    yield opened
    opened.close()


@settings(max_examples=examples(25))
@given(generated=runs, texts=st.lists(st.tuples(filters, orders), min_size=1, max_size=4))
@example(generated=[{"prefix": "a", "params": {"big": 2**53 + 1}, "metrics": {"loss": 2**53 + 1}, "status": None,
                     "notes": "a" * 50, "tags": [], "started": 1000.0},
                    {"prefix": "b", "params": {"big": 2**53, "a\\b": 1, "t\tab": 2.0**63}, "metrics": {"loss": 2**53},
                     "status": "FAILED", "notes": None, "tags": ["x"], "started": 1000.0},
                    {"prefix": "c", "params": {"big": 2**63 + 1, "t\tab": 2**63}, "metrics": {}, "status": None,
                     "notes": "100%", "tags": [], "started": 1000.0}],
         texts=[("params.big = 9007199254740993", "params.big desc"), ("params.`a\\b` = 1", ""),
                ("params.`t\tab` > 9223372036854775807", "params.`t\tab`"), ("metrics.loss = 9007199254740993", ""),
                ("notes like '%a%a%a%b'", "notes desc"), ("notes like '100\\%'", "metrics.loss desc")])
def test_python_sqlite_and_postgres_agree(backends, generated, texts):
    """Per filter and order: the same experiments, in the same order, from each evaluator (ids differ between
    databases; prefixes are unique, so they name the experiments)."""
    namespace = next(backends.namespaces)
    records = {name: backends.run(backends.populate(store, namespace, generated))
               for name, store in backends.stores.items()}
    for text, order in texts:
        node, keys = parse_filter(text), parse_order_by(order)
        answers = {}
        for name, store in backends.stores.items():
            total, page = backends.run(store.experiment_page(frozenset([namespace]), filter=node, order_by=keys,
                                                             limit=1000))
            python = [r["prefix"] for r in sort_records([r for r in records[name] if matches(node, r)],
                                                        keys or DEFAULT_ORDER)]
            assert [r["prefix"] for r in page] == python, (name, text, order)
            assert total == len(python)
            answers[name] = python
        assert len({tuple(a) for a in answers.values()}) == 1, (text, order, answers)


def test_generated_filters_parse():
    """The strategies above write filters the parser accepts (a FilterError would be the generator's bug)."""

    @settings(max_examples=examples(100))
    @given(filters, orders)
    def check(text, order):
        try:
            parse_filter(text), parse_order_by(order)
        except FilterError as exc:
            raise AssertionError(f"{text!r} / {order!r}: {exc}") from None

    check()

