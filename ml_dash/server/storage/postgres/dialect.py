"""PostgreSQL's spelling of a compiled experiment filter (``sql.query``): jsonb paths, ``COLLATE "C"``, LIKE."""
from __future__ import annotations

from ml_dash.server.storage.sql.query import Clause, QueryDialect

# The params column is JSON text (key order kept); queries read it as jsonb. CASE, not AND: PostgreSQL may evaluate
# AND's operands in any order, and the cast must only ever see a value of its type.
_AT = "(x.params::jsonb #> ?::text[])"
_TEXT_AT = "(x.params::jsonb #>> ?::text[])"


class PostgresDialect(QueryDialect):
    NULL_SAFE_EQ = "IS NOT DISTINCT FROM"

    def param(self, path, kind) -> Clause:
        keys = list(path)
        if kind == "number":
            return f"CASE WHEN jsonb_typeof{_AT} = 'number' THEN {_TEXT_AT}::float8 END", [keys, keys]
        if kind == "bool":
            return f"CASE WHEN jsonb_typeof{_AT} = 'boolean' THEN {_TEXT_AT}::boolean END", [keys, keys]
        return f'(CASE WHEN jsonb_typeof{_AT} = \'string\' THEN {_TEXT_AT} END) COLLATE "C"', [keys, keys]

    def metric(self, name) -> Clause:
        # last_kind 0: a number (NaN, null and bools have kinds of their own; see series.types)
        return ("(SELECT CASE WHEN m.last_kind = 0 THEN COALESCE(m.last_int::float8, m.last_num) END "
                "FROM metric_names m WHERE m.experiment_pk = x.pk AND m.name = ?)"), [name]

    def text(self, expression):
        return f'{expression} COLLATE "C"'

    def like(self, expression, pattern) -> Clause:
        return f"{expression} LIKE ?", [pattern]  # backslash is LIKE's default escape, as in format.filter

    def tags_contain(self, tag) -> Clause:
        return "(x.tags::jsonb @> jsonb_build_array(?::text))", [tag]

    def number(self, value):
        return float(value)
