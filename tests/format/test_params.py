"""The one parameter replay: its nesting limit applies to the result, and a read never fails on what was stored."""
from __future__ import annotations

import orjson
import pytest

from ml_dash.format.limits import MAX_NESTING
from ml_dash.format.params import check_nesting, contribution_depth, depth, replay


def nested(levels: int) -> dict:
    value: object = 1
    for _ in range(levels - 1):
        value = {"a": value}
    return {"a": value} if levels else 1


def test_depth_counts_containers_iteratively():
    """A scalar is 0 levels, {} is 1; a value far deeper than Python's recursion limit is measured, not a crash."""
    assert depth(1) == 0 and depth({}) == 1 and depth({"a": []}) == 2 and depth([[{"x": 1}]]) == 3
    assert depth(nested(5)) == 5
    deep: object = 1
    for _ in range(5000):
        deep = [deep]
    assert depth(deep) == MAX_NESTING + 1  # counted up to the first level past the limit


def test_a_dotted_key_counts_one_level_per_part():
    """``update("a.a.…b")`` nests the result one level per dotted part, plus the value's own levels."""
    assert contribution_depth({"operation": "update", "key": "a.b", "value": {"c": 1}}) == 3
    assert contribution_depth({"operation": "update", "key": "a." * 400 + "b", "value": 1}) > MAX_NESTING
    assert depth(replay([{"operation": "update", "key": "a." * (MAX_NESTING - 1) + "b", "value": 1}])) == MAX_NESTING
    with pytest.raises(ValueError, match="levels deep"):
        check_nesting({"operation": "update", "key": "a." * MAX_NESTING + "b", "value": 1})


def test_operations_within_the_limit_never_combine_past_it():
    """Each operation passes alone; the replay of all of them is never deeper than the deepest one."""
    ops = [{"operation": "extend", "data": nested(150)},
           {"operation": "update", "key": ".".join(["a"] * 100), "value": nested(100)},  # 200: the limit exactly
           {"operation": "extend", "data": {"a": {"a": nested(198)}}},
           {"operation": "update", "key": "a.a.a", "value": nested(MAX_NESTING - 3)}]
    for op in ops:
        check_nesting(op)
    result = replay(ops)
    assert depth(result) <= MAX_NESTING
    orjson.dumps({"data": {"experiments": [{"params": result}]}})  # what GraphQL answers: within orjson's limit


def test_replay_skips_an_operation_stored_over_the_limit():
    """An over-deep operation stored before the limit existed changes nothing: reads answer, never fail."""
    ops = [{"operation": "set", "data": {"lr": 0.1}},
           {"operation": "update", "key": "a." * 400 + "b", "value": 1},
           {"operation": "extend", "data": {"a": nested(MAX_NESTING)}},
           {"operation": "update", "key": "batch", "value": 32}]
    result = replay(ops)
    assert result == {"lr": 0.1, "batch": 32}
    orjson.dumps({"data": {"experiment": {"params": result}}})


def test_the_client_refuses_at_the_call_site(make_exp):
    """params.update/extend/set raise ValueError where the replayed parameters would be too deep; nothing is logged."""
    exp = make_exp()
    exp.params.set(lr=0.1)
    with pytest.raises(ValueError, match="params.update.*levels deep"):
        exp.params.update("a." * 400 + "b", 1)
    with pytest.raises(ValueError, match="params.extend"):
        exp.params.extend(a=nested(MAX_NESTING))
    with pytest.raises(ValueError, match="params.set"):
        exp.params.set(a=nested(MAX_NESTING))
    exp.params.update("a." * (MAX_NESTING - 1) + "b", 1)  # exactly the limit: accepted
    assert depth(exp.params.read()) == MAX_NESTING
