"""PostgreSQL's spelling of a compiled experiment filter (``sql.query``): jsonb paths, ``COLLATE "C"``, LIKE."""
from __future__ import annotations

from decimal import Decimal

from ml_dash.server.storage.sql.query import Clause, QueryDialect

# The params column is JSON text (key order kept); queries read it as jsonb. CASE, not AND: PostgreSQL may evaluate
# AND's operands in any order, and the cast must only ever see a value of its type.
_AT = "(x.params::jsonb #> ?::text[])"
_TEXT_AT = "(x.params::jsonb #>> ?::text[])"
# Numbers: jsonb would read 1.152921504606847e18 (a float) back as the integer 1152921504606847000, so they are read
# as json, whose text is the column's: ints are digits, floats have a '.' or an 'e' (orjson). No "?" may appear in
# this SQL, not even in a regex: it is the placeholder.
_NUMBER_AT = "(x.params::json #>> ?::text[])"
_IS_NUMBER = "json_typeof(x.params::json #> ?::text[]) = 'number'"


def _exact(double: str) -> str:
    """The exact value (numeric) of an integral float8 of magnitude at most 2**64 (float8 -> numeric keeps only 15
    digits); from 2**62 on such a float is a multiple of 1024, and int8 holds the quotient."""
    return (f"(CASE WHEN abs({double}) < 4611686018427387904 THEN ({double})::int8::numeric "
            f"ELSE (({double}) / 1024)::int8::numeric * 1024 END)")


class PostgresDialect(QueryDialect):
    NULL_SAFE_EQ = "IS NOT DISTINCT FROM"

    def param(self, path, kind) -> Clause:
        keys = list(path)
        if kind == "number":  # float8 rounds ints past 2**53: param_rest keeps what it drops
            return f"CASE WHEN {_IS_NUMBER} THEN {_NUMBER_AT}::float8 END", [keys, keys]
        if kind == "bool":
            return f"CASE WHEN jsonb_typeof{_AT} = 'boolean' THEN {_TEXT_AT}::boolean END", [keys, keys]
        return f'(CASE WHEN jsonb_typeof{_AT} = \'string\' THEN {_TEXT_AT} END) COLLATE "C"', [keys, keys]

    def param_rest(self, path) -> Clause:
        keys = list(path)
        sql = (f"CASE WHEN {_IS_NUMBER} THEN CASE WHEN {_NUMBER_AT} !~ '[.eE]' "
               f"THEN {_NUMBER_AT}::numeric - {_exact(f'{_NUMBER_AT}::float8')} ELSE 0 END END")
        return sql, [keys] * sql.count("?")

    def metric_rest(self, name) -> Clause:
        return ("(SELECT CASE WHEN m.last_kind = 0 THEN COALESCE(m.last_int::numeric - "
                f"{_exact('m.last_int::float8')}, 0) END FROM metric_names m "
                "WHERE m.experiment_pk = x.pk AND m.name = ?)"), [name]

    def number_key(self, value, rest):
        # float() rounds as float8 does (ints reach 2**64 at most, the parser sees to it); the rest binds as numeric
        rounded, missed = super().number_key(value, rest)
        return rounded, Decimal(missed)

    def metric(self, name) -> Clause:
        # last_kind 0: a number (NaN, null and bools have kinds of their own; see series.types)
        return ("(SELECT CASE WHEN m.last_kind = 0 THEN COALESCE(m.last_int::float8, m.last_num) END "
                "FROM metric_names m WHERE m.experiment_pk = x.pk AND m.name = ?)"), [name]

    def text(self, expression):
        return f'{expression} COLLATE "C"'

    def first_segment(self, expression):
        return f"split_part({expression}, '/', 1)"

    def contains_text(self, expression, lowered) -> Clause:
        return f"strpos(lower({expression}), ?::text) > 0", [lowered]

    def like(self, expression, pattern) -> Clause:
        return f"{expression} LIKE ?", [pattern]  # backslash is LIKE's default escape, as in format.filter

    def tags_contain(self, tag) -> Clause:
        return "(x.tags::jsonb @> jsonb_build_array(?::text))", [tag]

