"""Experiment queries run in the database: the filter AST (``format.filter``) compiled to SQL, pages, and the
experiment-level edits (tags, notes, soft delete), as ``protocol`` bodies both backends run.

What differs between SQLite and PostgreSQL (JSON access, collation, ``like``) is a backend's ``QueryDialect``; the
meaning is the one ``format.filter`` documents and evaluates in Python, so a filter selects the same experiments
from a server as from a local root. Everything is bound as arguments: no user text is ever spliced into SQL.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

import orjson

from ml_dash.format.annotations import check_notes, check_tags
from ml_dash.format.filter import (
    DEFAULT_ORDER,
    NUMBER_FIELDS,
    TIE_BREAK,
    BoolOp,
    Compare,
    Field,
    Node,
    OrderKey,
)
from ml_dash.format.limits import MAX_TAGS
from ml_dash.format.params import replay
from ml_dash.server.errors import NotFound
from ml_dash.server.storage.sql.protocol import ROW, ROWS, RUN, reads, writes

Clause = tuple[str, list]


def merged_params(current: str | None, records: Sequence[Any]) -> str:
    """The experiment's parameters column after the operation ``records`` (dicts or JSON text), as JSON text."""
    ops = [orjson.loads(r) if isinstance(r, (str, bytes)) else r for r in records]
    base = [] if current is None else [{"operation": "set", "data": orjson.loads(current)}]
    return orjson.dumps(replay(base + ops)).decode()


class QueryDialect:
    """How one backend spells the pieces of a compiled filter (``x`` is the experiment record's alias)."""

    NULL_SAFE_EQ = "IS"

    def param(self, path: tuple[str, ...], kind: str) -> Clause:
        """The parameter at ``path`` when it is a ``kind`` ("number", "string", "bool") value, else NULL."""
        raise NotImplementedError

    def metric(self, name: str) -> Clause:
        """The metric's last value when it is a number (not NaN, null or a bool), else NULL."""
        raise NotImplementedError

    # A number compares as a pair of keys (``number_keys``): the first the value ``param``/``metric`` give, which
    # the backend may only approximate (PostgreSQL's float8, SQLite's floats past 2**63), the second what is left of
    # the exact value (NULL exactly when the first is; None: always 0). Pairs order as the exact values do.
    def param_rest(self, path: tuple[str, ...]) -> Clause | None:
        return None

    def metric_rest(self, name: str) -> Clause | None:
        return None

    def number_key(self, value: int | float, rest: bool) -> tuple[Any, Any]:
        """A literal's pair of keys (bound values) against an expression with a rest (``rest``) or without one (a
        float column, or exact ints and floats): by default the float nearest ``value`` and the int it misses by,
        which orders right against floats (the only values a float column holds)."""
        if isinstance(value, float):
            return value, 0
        rounded = float(value)
        return rounded, value - int(rounded)

    def text(self, expression: str) -> str:
        """``expression`` compared by code point."""
        return expression

    def like(self, expression: str, pattern: str) -> Clause:
        raise NotImplementedError

    def first_segment(self, expression: str) -> str:
        """``expression``'s text up to its first ``/`` (all of it without one): a directory's top folder."""
        return (f"(CASE WHEN instr({expression}, '/') > 0 THEN substr({expression}, 1, instr({expression}, '/') - 1) "
                f"ELSE {expression} END)")

    def contains_text(self, expression: str, lowered: str) -> Clause:
        """``expression`` holds ``lowered`` (already lower case), ignoring ASCII case; NULL never does."""
        return f"instr(lower({expression}), ?) > 0", [lowered]

    def tags_contain(self, tag: str) -> Clause:
        raise NotImplementedError

    def boolean(self, value: bool) -> Any:
        return value


def compile_filter(node: Node | None, dialect: QueryDialect) -> Clause:
    """The filter as an SQL condition on ``x`` and its arguments ("1 = 1" for None)."""
    if node is None:
        return "1 = 1", []
    if isinstance(node, BoolOp):
        parts = [compile_filter(item, dialect) for item in node.items]
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [a for _, args in parts for a in args]
    assert isinstance(node, Compare)
    field, op, value = node.field, node.op, node.value
    if field.kind == "tags":
        return dialect.tags_contain(value)
    kind = "bool" if isinstance(value, bool) else "string" if isinstance(value, str) else "number"
    expression, args = _expression(field, kind, dialect)
    if op == "like":
        sql, more = dialect.like(expression, value)
        return f"({sql})", [*args, *more]
    if kind == "number":
        rest = _rest(field, dialect)
        return _compare_numbers((expression, args), rest, op, *dialect.number_key(value, rest is not None))
    bound = dialect.boolean(value) if kind == "bool" else value
    return f"({expression} {op} ?)", [*args, bound]


_STRICT = {"<": "<", "<=": "<", ">": ">", ">=": ">"}
_LOOSE = {"<": "<=", "<=": "<=", ">": ">=", ">=": ">="}
_HOLDS = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
          ">=": lambda a, b: a >= b}


def _compare_numbers(first: Clause, rest: Clause | None, op: str, key: Any, rest_key: Any) -> Clause:
    """``(first, rest) op (key, rest_key)`` in lexicographic order: the exact comparison of the values."""
    (sql, args) = first
    if rest is None:  # the rest is 0: decide its part here
        if op == "=":
            return (f"({sql} = ?)", [*args, key]) if rest_key == 0 else ("(1 = 0)", [])
        if op == "!=":
            return (f"({sql} <> ?)", [*args, key]) if rest_key == 0 else (f"({sql} IS NOT NULL)", args)
        return f"({sql} {(_LOOSE if _HOLDS[op](0, rest_key) else _STRICT)[op]} ?)", [*args, key]
    rest_sql, rest_args = rest
    if op == "=":
        return f"({sql} = ? AND {rest_sql} = ?)", [*args, key, *rest_args, rest_key]
    if op == "!=":
        return f"({sql} <> ? OR {rest_sql} <> ?)", [*args, key, *rest_args, rest_key]
    return (f"({sql} {_STRICT[op]} ? OR ({sql} = ? AND {rest_sql} {op} ?))",
            [*args, key, *args, key, *rest_args, rest_key])


def _rest(field: Field, dialect: QueryDialect) -> Clause | None:
    if field.kind == "params":
        return dialect.param_rest(field.path)
    return dialect.metric_rest(field.path[0]) if field.kind == "metrics" else None


def _expression(field: Field, kind: str, dialect: QueryDialect) -> Clause:
    if field.kind == "params":
        return dialect.param(field.path, kind)
    if field.kind == "metrics":
        return dialect.metric(field.path[0])
    name = field.path[0]
    return (f"x.{name}", []) if name in NUMBER_FIELDS else (dialect.text(f"x.{name}"), [])


def compile_order(keys: Sequence[OrderKey], dialect: QueryDialect) -> Clause:
    """ORDER BY terms (without the keywords) and their arguments: per key numbers first, then strings, then the rest
    (``format.filter.sort_records``); the tie-break keys last, so paging is stable."""
    terms, args = [], []
    for key in keys or DEFAULT_ORDER:
        direction = "DESC" if key.descending else "ASC"
        kinds = ("number", "string") if key.field.kind == "params" else (
            "number" if key.field.kind == "metrics" or key.field.path[0] in NUMBER_FIELDS else "string",)
        for kind in kinds:
            expression, more = _expression(key.field, kind, dialect)
            terms.append(f"{expression} {direction} NULLS LAST")
            args.extend(more)
            rest = _rest(key.field, dialect) if kind == "number" else None
            if rest is not None:
                terms.append(f"{rest[0]} {direction} NULLS LAST")
                args.extend(rest[1])
    terms.extend(f"{dialect.text('x.' + name)} ASC" for name in TIE_BREAK)
    return ", ".join(terms), args


class ExperimentQueries:
    """The ``Storage`` methods of experiment pages and edits; mixed into ``SQLStorage`` (which has ``_experiments``,
    ``_experiment_pk`` and the dialect)."""

    DIALECT: QueryDialect
    LAST_COLUMNS: str  # metric_names' last-value columns (alias m), in ``_decode_last``'s order
    LAST_WHERE = ""  # which metric_names rows ``LAST_METRICS`` answers (an AND clause on m)

    def _scope(self, namespaces, include_deleted, **equal) -> tuple[list[str], list]:
        """The WHERE clauses (joined with AND) and arguments that pick the experiments visible to ``namespaces``
        (``None``: all), not soft-deleted unless asked, whose columns equal the ``equal`` values that are not None."""
        clauses, args = [], []
        if namespaces is not None:
            clause, values = self._in("namespace", sorted(namespaces), "text")
            clauses.append(clause)
            args.extend(values)
        for column, value in equal.items():
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if not include_deleted:
            clauses.append("deleted_at IS NULL")
        return clauses, args

    @reads(snapshot=True)
    def experiment_page(self, namespaces, workspace=None, directory=None, filter=None, order_by=(), limit=100,
                        offset=0, include_deleted=False):
        clauses, args = self._scope(namespaces, include_deleted, workspace=workspace, directory=directory)
        where, where_args = compile_filter(filter, self.DIALECT)
        clauses.append(where)
        args.extend(where_args)
        order, order_args = compile_order(order_by, self.DIALECT)
        condition = " AND ".join(clauses)
        found = yield from self._experiments(condition, (*args, *order_args, limit, offset),
                                             f"ORDER BY {order} LIMIT ? OFFSET ?")
        total = yield from self._experiments(condition, args, count=True)
        return int(total), found

    @reads
    def count_experiments(self, namespaces, workspace=None, directory=None, include_deleted=False):
        """How many experiments a page's scope holds (what its filter is evaluated on): a page's price."""
        clauses, args = self._scope(namespaces, include_deleted, workspace=workspace, directory=directory)
        sql = f"SELECT COUNT(*) FROM experiments WHERE {' AND '.join(clauses) or '1 = 1'}"
        return int((yield ROW, sql, args)[0])

    @reads
    def last_metrics_many(self, experiment_ids):
        """experiment id → its last metrics (as ``last_metrics``), for a page of experiments in one query."""
        if not experiment_ids:
            return {}
        clause, args = self._in("e.id", list(experiment_ids), "text")
        rows = yield ROWS, (f"SELECT e.id, m.name, {self.LAST_COLUMNS} FROM metric_names m JOIN experiments e "
                            f"ON e.pk = m.experiment_pk WHERE {clause} {self.LAST_WHERE} "
                            "ORDER BY e.id, m.name"), args
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            out.setdefault(row[0], {})[row[1]] = self._decode_last(*row[2:])
        return out

    async def edit_tags(self, experiment_id, replace=None, add=(), remove=()):
        """Set (``replace``) or change the experiment's tags; returns them. The lists are checked before the write,
        in a thread when long (neither SQLite's single writer nor PostgreSQL's loop spends time on a long list)."""
        def checked() -> tuple:
            return (None if replace is None else check_tags(replace), check_tags(add, "add"),
                    frozenset(check_tags(remove, "remove", limit=None)))  # removing many is harmless

        long = max(len(x) if isinstance(x, (list, tuple)) else 0 for x in (replace, add, remove)) > 4 * MAX_TAGS
        edit = await asyncio.to_thread(checked) if long else checked()
        return await self._edit_tags(experiment_id, *edit)

    @writes
    def _edit_tags(self, experiment_id, replace, add, drop):
        """Concurrent edits never lose one: the write only lands on the tags it read. ``replace`` and ``add`` hold
        at most ``MAX_TAGS`` tags each (checked), so the merge is small."""
        pk = yield from self._experiment_pk(experiment_id)
        for _ in range(20):
            stored = (yield ROW, "SELECT tags FROM experiments WHERE pk = ?", (pk,))[0]
            tags = replace if replace is not None else orjson.loads(stored) if stored else []
            tags = list(dict.fromkeys([*tags, *add]))  # each one checked already
            if len(tags) > MAX_TAGS:
                raise ValueError(f"tags: at most {MAX_TAGS} tags per experiment, got {len(tags)}")
            text = orjson.dumps([t for t in tags if t not in drop]).decode()
            if (yield RUN, f"UPDATE experiments SET tags = ? WHERE pk = ? AND tags {self.DIALECT.NULL_SAFE_EQ} ?",
                    (text, pk, stored)):
                return orjson.loads(text)
        raise RuntimeError("the tags kept changing under this edit")

    @writes
    def set_notes(self, experiment_id, notes):
        pk = yield from self._experiment_pk(experiment_id)
        yield RUN, "UPDATE experiments SET notes = ? WHERE pk = ?", (check_notes(notes), pk)
        return notes

    @writes
    def set_deleted(self, experiment_id, deleted):
        """Soft delete (``deleted``) or restore; returns ``deleted_at`` (None once restored). Deleting twice keeps
        the first time."""
        pk = yield from self._experiment_pk(experiment_id)
        if deleted:
            yield RUN, "UPDATE experiments SET deleted_at = COALESCE(deleted_at, ?) WHERE pk = ?", (time.time(), pk)
        else:
            yield RUN, "UPDATE experiments SET deleted_at = NULL WHERE pk = ?", (pk,)
        row = yield ROW, "SELECT deleted_at FROM experiments WHERE pk = ?", (pk,)
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        return row[0]
