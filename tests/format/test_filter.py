"""The filter and order-by languages: parsing, errors naming the position, and the Python evaluator."""
from __future__ import annotations

import math

import pytest

from ml_dash.format.filter import (
    BoolOp,
    Compare,
    Field,
    FilterError,
    OrderKey,
    like_regex,
    matches,
    parse_filter,
    parse_order_by,
    sort_records,
)

RECORD = {"id": "e1", "namespace": "alice", "workspace": "vision", "directory": None, "prefix": "resnet-50",
          "status": "completed", "notes": None, "started_at": 10.0, "completed_at": 20.0, "tags": ["baseline"],
          "params": {"lr": 0.001, "model": {"layers": 50, "name": "resnet"}, "amp": True, "opt": "adam"},
          "last_metrics": {"loss": 0.25, "val/loss": 0.3, "nan": math.nan, "flag": True}}


def test_parse_builds_the_ast_with_precedence():
    """and binds tighter than or; parentheses group; == and <> are = and !=; status literals are upper-cased."""
    node = parse_filter("params.lr < 0.01 or status == 'completed' and tags contains 'x'")
    assert node == BoolOp("or", (Compare(Field("params", ("lr",)), "<", 0.01),
                                 BoolOp("and", (Compare(Field("attr", ("status",)), "=", "COMPLETED"),
                                                Compare(Field("tags", ()), "contains", "x")))))
    assert parse_filter("(metrics.a <> 1)") == Compare(Field("metrics", ("a",)), "!=", 1)
    assert parse_filter("params.`my key`.x = \"it's\"") == Compare(Field("params", ("my key", "x")), "=", "it's")
    assert parse_filter("metrics.train/loss >= -1e-3").field == Field("metrics", ("train/loss",))
    assert parse_filter("  ") is None and parse_order_by(None) == ()


@pytest.mark.parametrize("text, position, fragment", [
    ("params.lr <", 11, "expected a value"),
    ("params.lr < 0.01 and", 20, "expected a field"),
    ("bogus = 1", 0, "unknown field 'bogus'"),
    ("metrics.loss = 'low'", 15, "numbers only"),
    ("(status = 'a'", 13, "expected ')'"),
    ("prefix = 'a')", 12, "unexpected ')'"),
    ("prefix = 'abc", 9, "unterminated quote"),
    ("prefix like 1", 12, "'like' needs"),
    ("tags = 'x'", 0, "tags contains"),
    ("params.x contains 'a'", 0, "applies to tags only"),
    ("params.flag < true", 14, "true and false"),
    ("started_at > 'yesterday'", 13, "numbers only"),
    ("prefix = 'a' # b", 13, "unexpected character '#'"),
    (" or ".join(["prefix = 'a'"] * 65), 64 * 16, "more than 64 comparisons"),
    ("(" * 51 + "prefix = 'a'" + ")" * 51, 50, "nested more than 50"),
])
def test_syntax_errors_are_value_errors_naming_the_position(text, position, fragment):
    """Each malformed filter raises FilterError (a ValueError) whose message names the offending position."""
    with pytest.raises(ValueError) as error:
        parse_filter(text)
    assert isinstance(error.value, FilterError) and error.value.position == position
    assert fragment in str(error.value) and f"at position {position}" in str(error.value)


def test_order_by_parses_keys_and_refuses_junk():
    """A comma list of fields with asc/desc; camelCase names; tags and trailing junk are errors with positions."""
    assert parse_order_by("metrics.loss asc, params.lr desc, startedAt desc") == (
        OrderKey(Field("metrics", ("loss",))), OrderKey(Field("params", ("lr",)), True),
        OrderKey(Field("attr", ("started_at",)), True))
    with pytest.raises(FilterError, match="orderBy: unexpected 'up' .* at position 7"):
        parse_order_by("prefix up")
    with pytest.raises(FilterError, match="cannot order by tags at position 0"):
        parse_order_by("tags")
    with pytest.raises(FilterError, match="more than 8 order keys at position 64"):
        parse_order_by(", ".join(["prefix"] * 9))


@pytest.mark.parametrize("text, expected", [
    ("params.lr < 0.01 and status = 'completed'", True),
    ("params.lr < 0.0001", False),
    ("params.model.layers = 50 and params.model.name like 'res%'", True),
    ("params.opt != 'sgd'", True),
    ("params.opt != 1", False),  # a string is never compared with a number, != included
    ("params.missing != 1", False),
    ("params.amp = true", True),
    ("params.amp != false", True),
    ("params.model = 1", False),
    ("metrics.loss <= 0.25", True),
    ("metrics.val/loss > 0.29", True),
    ("metrics.nan != 0", False),  # NaN never matches
    ("metrics.flag = 1", False),  # a bool is not a number
    ("tags contains 'baseline'", True),
    ("tags contains 'Baseline'", False),
    ("prefix like 'RESNET%'", False),  # like is case-sensitive
    ("prefix like 'resnet-__'", True),
    ("prefix like 'resnet\\-%'", True),
    ("directory = ''", True),
    ("status = 'COMPLETED' or started_at > 100", True),
    ("(started_at > 100 or completed_at >= 20) and namespace = 'alice'", True),
])
def test_evaluator(text, expected):
    """matches() follows the documented typing rules on a local record."""
    assert matches(parse_filter(text), RECORD) is expected


def test_like_regex_escapes():
    """% and _ are wildcards unless escaped; regex metacharacters are literal."""
    assert like_regex("a%b").fullmatch("aXYZb") and not like_regex("a%b").fullmatch("aXYZ")
    assert like_regex("100\\%").fullmatch("100%") and not like_regex("100\\%").fullmatch("1000")
    assert like_regex("a.c").fullmatch("a.c") and not like_regex("a.c").fullmatch("abc")


def test_sort_numbers_then_strings_then_the_rest_with_a_stable_tie_break():
    """Per key: numbers ordered, then strings, then missing; direction flips values, not the groups."""
    rows = [{"prefix": p, "namespace": "n", "workspace": "w", "params": {"lr": lr}}
            for p, lr in [("a", 0.1), ("b", "auto"), ("c", None), ("d", 0.01), ("e", "x"), ("f", 0.1)]]
    asc = sort_records(rows, parse_order_by("params.lr"))
    assert [r["prefix"] for r in asc] == ["d", "a", "f", "b", "e", "c"]
    desc = sort_records(rows, parse_order_by("params.lr desc"))
    assert [r["prefix"] for r in desc] == ["a", "f", "d", "e", "b", "c"]
    assert [r["prefix"] for r in sort_records(rows, parse_order_by("prefix desc"))] == list("fedcba")


TOKENS = ["params.lr", "metrics.loss", "tags", "status", "prefix", "started_at", "and", "or", "(", ")", "=", "!=",
          "<", ">=", "like", "contains", "'a%'", '"b"', "1", "-2.5e3", "true", "`k`", ".", ",", "asc", "desc", "'",
          "\\", "\x00", "é", "params", "metrics.", "==", "<>"]


def test_any_text_parses_or_raises_a_filter_error():
    """Random token soups and random characters never raise anything but FilterError (no IndexError, no
    RecursionError), and what parses evaluates on a record without raising."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    soup = st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join)

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(st.one_of(soup, st.text(max_size=40)))
    def check(text):
        for parse in (parse_filter, parse_order_by):
            try:
                parsed = parse(text)
            except FilterError:
                continue
            if parse is parse_filter:
                assert matches(parsed, RECORD) in (True, False)
            else:
                sort_records([RECORD, {**RECORD, "prefix": "other"}], parsed)

    check()
