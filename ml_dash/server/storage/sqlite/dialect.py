"""SQLite's spelling of a compiled experiment filter (``sql.query``): JSON1 functions, BINARY text, GLOB."""
from __future__ import annotations

import re

from ml_dash.server.storage.sql.query import Clause, QueryDialect

_JSON_TYPES = {"number": "IN ('integer', 'real')", "string": "= 'text'"}


def json_path(path: tuple[str, ...]) -> str:
    """``$."a"."b"``: every key quoted, so dots and brackets inside a key stay part of it (the filter parser refuses
    keys holding a double quote)."""
    return "$" + "".join(f'."{key}"' for key in path)


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
        return f"CASE WHEN json_type(x.params, ?) {_JSON_TYPES[kind]} THEN json_extract(x.params, ?) END", [p, p]

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
