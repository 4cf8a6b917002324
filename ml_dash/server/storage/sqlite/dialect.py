"""SQLite's spelling of a compiled experiment filter (``sql.query``): JSON1 functions, BINARY text, GLOB."""
from __future__ import annotations

import re

import orjson

from ml_dash.server.storage.sql.query import Clause, QueryDialect

_JSON_TYPES = {"string": "= 'text'"}


def json_path(path: tuple[str, ...]) -> str:
    """``$."a"."b"``: every key quoted, so dots and brackets inside a key stay part of it (the filter parser refuses
    keys holding a double quote), and escaped as orjson escapes it in the stored column: SQLite before 3.45 compares
    a path's key with the stored key's escaped text (so a key holding a backslash or a tab never matched), later
    versions unescape both."""
    return "$" + "".join("." + orjson.dumps(key).decode() for key in path)


# Parameters past 2**63 (unsigned 64-bit ints, which json_extract reads as a float, and the floats among them, up to
# 2**64) share the first key 2**63 and order by the second: their exact distance from 2**63, an int or an exact float
# difference. Metrics' ints stop below 2**63 and SQLite compares ints and floats exactly, so they need no rest.
_TWO_63, _TWO_64 = 2**63, 2**64
_BEYOND = "(json_type(x.params, ?) = 'integer' AND typeof(json_extract(x.params, ?)) = 'real')"
_TWO_63_REAL = "(9223372036854775807 + 1.0)"  # exactly 2.0**63 (a decimal spelling relies on SQLite's strtod)
_BAND = f"(json_extract(x.params, ?) >= {_TWO_63_REAL} AND json_extract(x.params, ?) < 2.0 * {_TWO_63_REAL})"
# The int's text: json_extract with two paths answers a JSON array that copies the numbers' text as stored.
_DIGITS = ("substr(json_extract(x.params, ?, ?), 2, instr(json_extract(x.params, ?, ?), ',') - 2)")
# digits - 2**63 without overflowing: 2**63 = 922337204 * 10**10 - 3145224192
_OVER = (f"((CAST(substr({_DIGITS}, 1, length({_DIGITS}) - 10) AS INTEGER) - 922337204) * 10000000000 "
         f"+ CAST(substr({_DIGITS}, -10) AS INTEGER) + 3145224192)")


def glob_pattern(like: str) -> str:
    """A ``like`` pattern (``%``, ``_``, ``\\`` escapes) as a GLOB pattern: GLOB is case-sensitive, as ``like`` is
    everywhere (SQLite's own LIKE folds ASCII case)."""
    out = []
    for escaped, char in re.findall(r"\\(.)|(.)", like, re.DOTALL):
        char = escaped or char
        if not escaped and char in "%_":
            out.append("*" if char == "%" else "?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


class SQLiteDialect(QueryDialect):
    NULL_SAFE_EQ = "IS"

    def param(self, path, kind) -> Clause:
        p = json_path(path)
        if kind == "bool":
            return "CASE json_type(x.params, ?) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END", [p]
        if kind == "number":
            sql = (f"CASE WHEN json_type(x.params, ?) IN ('integer', 'real') THEN CASE WHEN {_BEYOND} OR {_BAND} "
                   f"THEN {_TWO_63_REAL} ELSE json_extract(x.params, ?) END END")
            return sql, [p] * sql.count("?")
        return f"CASE WHEN json_type(x.params, ?) {_JSON_TYPES[kind]} THEN json_extract(x.params, ?) END", [p, p]

    def param_rest(self, path) -> Clause:
        sql = (f"CASE WHEN json_type(x.params, ?) IN ('integer', 'real') THEN CASE WHEN {_BEYOND} THEN {_OVER} "
               f"WHEN {_BAND} THEN json_extract(x.params, ?) - {_TWO_63_REAL} ELSE 0 END END")
        return sql, [json_path(path)] * sql.count("?")  # every placeholder is the path

    def number_key(self, value, rest):
        if rest and _TWO_63 <= value < _TWO_64:  # param's band past 2**63
            return float(_TWO_63), (value - _TWO_63 if isinstance(value, int) else value - float(_TWO_63))
        if rest or isinstance(value, float) or value < _TWO_63:  # SQLite compares ints and floats exactly
            return value, 0
        return super().number_key(value, rest)  # past 2**63, against metrics' and times' floats and smaller ints

    def metric(self, name) -> Clause:
        # last_kind 0: a number (NaN, null and bools have kinds of their own; see series.types)
        return ("(SELECT CASE WHEN m.last_kind = 0 THEN m.last_value END FROM metric_names m "
                "WHERE m.experiment_pk = x.pk AND m.name = ?)"), [name]

    def like(self, expression, pattern) -> Clause:
        return f"{expression} GLOB ?", [glob_pattern(pattern)]

    def tags_contain(self, tag) -> Clause:
        return "EXISTS (SELECT 1 FROM json_each(x.tags) t WHERE t.value = ?)", [tag]

    def boolean(self, value):
        return int(value)
