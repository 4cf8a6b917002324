"""Property-based tests of the client alone: what is logged is what is read back, parameters replay like a simple
reference model, and refused calls raise naming their argument without losing what was logged before."""
from __future__ import annotations

import glob
import math
import os
import string
import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ml_dash import Experiment
from ml_dash.format.jsonl import read_jsonl
from ml_dash.format.limits import MAX_NAME_LENGTH, MAX_NESTING
from ml_dash.format.params import replay
from tests.fuzz.conftest import examples

NAME_ALPHABET = string.ascii_letters + string.digits + "_-/."
KEY_ALPHABET = string.ascii_letters + string.digits + "_-"  # parameter keys: no "." (that is update's separator)
RESERVED = {"step", "self"}  # keyword arguments of log()/set() themselves

metric_names = st.text(NAME_ALPHABET, min_size=1, max_size=MAX_NAME_LENGTH).filter(lambda n: n not in RESERVED)
metric_values = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.booleans(), st.none())
steps = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1))
rows = st.lists(st.tuples(steps, st.dictionaries(metric_names, metric_values, min_size=1, max_size=6)),
                min_size=1, max_size=8)

keys = st.text(KEY_ALPHABET, min_size=1, max_size=12).filter(lambda k: k not in RESERVED)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=20))
json_values = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(keys, inner, max_size=3)), max_leaves=12)
param_dicts = st.dictionaries(keys, json_values, max_size=4)
dotted = st.lists(keys, min_size=1, max_size=4).map(".".join)
operations = st.lists(st.one_of(st.tuples(st.just("set"), param_dicts), st.tuples(st.just("extend"), param_dicts),
                                st.tuples(st.just("update"), st.tuples(dotted, json_values))), max_size=10)


def new_experiment(root: str) -> Experiment:
    return Experiment(namespace="fuzz", workspace="props", prefix="p", local_root=root)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and bool never equal to int."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def assert_rows(read: list[dict], logged: list[tuple]) -> None:
    assert len(read) == len(logged)
    for row, (step, metrics) in zip(read, logged):
        assert row["step"] == step
        assert same(row["metrics"], metrics), (row["metrics"], metrics)


# --- the reference model of parameters: written from docs/api.md, not from ml_dash.format.params --------------------

def plain(value: Any) -> Any:
    """What a parameter value is stored as: non-finite floats as their JSONL spellings, containers copied."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def model_merge(into: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            model_merge(into[k], v)
        else:
            into[k] = plain(v)


def model_apply(model: dict, operation: str, argument: Any) -> dict:
    if operation == "set":
        return plain(argument)
    if operation == "extend":
        model_merge(model, argument)
        return model
    key, value = argument
    node = model
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = plain(value)
    return model


def apply(exp: Experiment, operation: str, argument: Any) -> None:
    if operation == "update":
        exp.params.update(*argument)
    else:
        getattr(exp.params, operation)(**argument)


# --- the properties -------------------------------------------------------------------------------------------------

@settings(max_examples=examples(40))
@given(rows)
def test_logged_metrics_read_back(logged):
    with tempfile.TemporaryDirectory() as root:
        exp = new_experiment(root)
        for step, metrics in logged:
            exp.metrics.log(step=step, **metrics)
        assert exp.flush(timeout=10)
        assert_rows(exp.metrics.read(), logged)
        exp.complete()


@settings(max_examples=examples(40))
@given(operations)
def test_parameters_replay_like_the_model(ops):
    with tempfile.TemporaryDirectory() as root:
        exp = new_experiment(root)
        model: dict = {}
        for operation, argument in ops:
            apply(exp, operation, argument)
            model = model_apply(model, operation, argument)
        assert same(exp.params.read(), model), (exp.params.read(), model)
        files = glob.glob(os.path.join(root, "**", "parameters.jsonl"), recursive=True)
        records = read_jsonl(files[0]) if files else []
        assert len(records) == len(ops)
        assert same(replay(records), model)
        exp.complete()


class Opaque:
    """No JSON value, no number."""


bad_metric_values = st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=2), st.just(Opaque()),
                              st.dictionaries(keys, st.integers(), max_size=2), st.complex_numbers())
bad_steps = st.one_of(st.text(max_size=5), st.floats(), st.just(Opaque()), st.lists(st.integers(), max_size=2))
bad_keys = st.one_of(st.just(""), st.lists(st.sampled_from(["", "a", "b"]), min_size=2, max_size=4).map(".".join)
                     .filter(lambda k: "" in k.split(".")), st.integers(), st.none())


def too_deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"d": value}
    return value


@settings(max_examples=examples(30))
@given(rows, operations, st.data())
def test_refused_calls_name_their_argument_and_lose_nothing(logged, ops, data):
    with tempfile.TemporaryDirectory() as root:
        exp = new_experiment(root)
        model: dict = {}
        for step, metrics in logged:
            exp.metrics.log(step=step, **metrics)
        for operation, argument in ops:
            apply(exp, operation, argument)
            model = model_apply(model, operation, argument)
        name = data.draw(metric_names, "name")
        kind = data.draw(st.sampled_from(["value", "step", "key", "param", "deep", "namespace"]), "kind")
        if kind == "value":
            bad, exc, call = data.draw(bad_metric_values), TypeError, None
            call = lambda: exp.metrics.log(step=1, **{name: bad})  # noqa: E731
            mention = f"{name[:40]}"
        elif kind == "step":
            bad = data.draw(bad_steps)
            exc, call, mention = TypeError, lambda: exp.metrics.log(step=bad, **{name: 1.0}), "step"  # noqa: E731
        elif kind == "key":
            bad = data.draw(bad_keys)
            exc, call, mention = ValueError, lambda: exp.params.update(bad, 1), "key"  # noqa: E731
        elif kind == "param":
            key = data.draw(keys)
            exc, call, mention = TypeError, lambda: exp.params.set(**{key: {"x": Opaque()}}), f"{key}.x"  # noqa: E731
        elif kind == "deep":
            key = data.draw(keys)
            exc, call, mention = (ValueError, lambda: exp.params.extend(**{key: too_deep(MAX_NESTING)}),  # noqa: E731
                                  "levels deep")
        else:
            long = "n" * (MAX_NAME_LENGTH + data.draw(st.integers(0, 10)))
            exc, call, mention = ValueError, lambda: exp.metrics(long), "256"  # noqa: E731
        try:
            call()
        except exc as error:
            assert mention in str(error), (mention, str(error))
        else:
            raise AssertionError(f"{kind}: no {exc.__name__}")
        assert exp.flush(timeout=10)
        assert_rows(exp.metrics.read(), logged)
        assert same(exp.params.read(), model)
        exp.complete()
