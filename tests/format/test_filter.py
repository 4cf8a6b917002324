"""The filter and order-by languages: parsing, errors naming the position, and the Python evaluator."""
from __future__ import annotations

import math
import re

import pytest

from ml_dash.format.filter import (
    BoolOp,
    Compare,
    Field,
    FilterError,
    OrderKey,
    like_match,
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


def test_like_escapes():
    """% and _ are wildcards unless escaped; regex metacharacters are literal."""
    assert like_match("a%b", "aXYZb") and not like_match("a%b", "aXYZ")
    assert like_match("100\\%", "100%") and not like_match("100\\%", "1000")
    assert like_match("a.c", "a.c") and not like_match("a.c", "abc")
    assert like_match("a\\\\%", "a\\bc") and not like_match("a\\\\%", "abc")  # an escaped backslash, then any run
    assert like_match("%a_c%", "xxabcxx") and like_match("_", "é") and not like_match("__", "é")
    assert like_match("%%", "") and like_match("a%%b", "ab") and not like_match("a%b%c", "acb")


def test_string_literal_has_one_escape_layer_for_like():
    """In a string literal only \\' (\\") and \\\\ are escapes; every other backslash reaches like, so the docs'
    example like '100\\%' matches "100%" and not "100abc" (the literal's unquoting used to eat the backslash)."""
    record = {**RECORD, "prefix": "100%"}
    assert matches(parse_filter("prefix like '100\\%'"), record)
    assert not matches(parse_filter("prefix like '100\\%'"), {**RECORD, "prefix": "100abc"})
    assert parse_filter("prefix = 'it\\'s'").value == "it's" and parse_filter('prefix = "a\\"b"').value == 'a"b'
    assert parse_filter("prefix = 'C:\\dir'").value == "C:\\dir"
    assert parse_filter("prefix = 'a\\\\b'").value == "a\\b" and parse_filter("prefix = 'a\\\\'").value == "a\\"
    assert parse_filter("prefix = 'it''s'").value == "it's"
    assert matches(parse_filter("prefix like '100\\\\%'"), record)  # the dashboard's \\\\ spelling


@pytest.mark.timeout(10)
def test_like_takes_linear_time_on_a_pathological_pattern():
    """'%a%a%a%b' against 3,000 (here 100,000) a's was a backtracking regex: hours. The segment matcher scans once."""
    node = parse_filter("notes like '%a%a%a%b'")
    assert not matches(node, {**RECORD, "notes": "a" * 3000})
    assert not matches(node, {**RECORD, "notes": "a" * 100_000})
    assert matches(parse_filter("notes like '%a_a%a%b'"), {**RECORD, "notes": "a" * 50_000 + "b"})
    assert not matches(parse_filter("notes like '%" + "a_" * 200 + "b'"), {**RECORD, "notes": "a" * 100_000})


@pytest.mark.parametrize("text, fragment", [
    ("params.x = 18446744073709551616", "18446744073709551616"),  # 2**64: no parameter or metric holds such an int
    ("params.x < -9223372036854775809", "-9223372036854775809"),
    ("params.x = 1" + "0" * 400, "1000000000"),
    ("params.x = 1" + "0" * 5000, "1000000000"),  # beyond int()'s 4,300-digit limit: still a FilterError
    ("params.x > 1e400", "1e400"),
    ("params.x > -1e999", "-1e999"),
    ("params.`a\x00b` = 1", "NUL"),
    ("notes like '%\x00%'", "NUL"),
    ("prefix = \"\x00\"", "NUL"),
])
def test_literals_out_of_range_or_with_nul_are_filter_errors(text, fragment):
    """The parser accepted them and the server answered 500 (SQLite cannot bind an int >= 2**63, float() overflows
    on PostgreSQL, a NUL cut SQLite's JSON path and GLOB pattern short); now a FilterError naming the literal."""
    with pytest.raises(FilterError, match=re.escape(fragment)):
        parse_filter(text)


def test_integers_compare_exactly_in_the_64_bit_range():
    """Ints up to 2**64-1 are accepted and compare exactly, with ints and floats alike (2**53 + 1 != 2.0**53)."""
    big = 2**53
    rows = [{**RECORD, "prefix": str(i), "params": {"big": v}} for i, v in
            enumerate([big, big + 1, float(big), big + 2, 2**64 - 1, 2**63, float(2**63), -2**63, 0.5])]
    assert [r["params"]["big"] for r in rows if matches(parse_filter(f"params.big = {big + 1}"), r)] == [big + 1]
    assert [r["prefix"] for r in rows if matches(parse_filter("params.big >= 9223372036854775808"), r)] == \
        ["4", "5", "6"]
    ordered = sort_records(rows, parse_order_by("params.big desc"))
    assert [r["params"]["big"] for r in ordered] == [2**64 - 1, 2**63, float(2**63), big + 2, big + 1, big,
                                                     float(big), 0.5, -2**63]


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
