"""The experiment filter and order-by languages (docs/query.md): text → a small AST, and the one Python evaluator.

The server compiles the AST to SQL (``server.storage.sql.query``); ``ml_dash.Api`` on a local root evaluates it here
(``matches``, ``sort_records``). Both follow the same rules, so the same filter selects the same experiments:

- a comparison holds only when the field's value has the literal's type (a number, a string, a boolean); a missing
  field, a null, a NaN or another type never matches, whatever the operator (``!=`` included);
- numbers compare by exact value (ints up to 64 bits, with each other and with floats: 2**53 + 1 != 2.0**53); an int
  literal outside -2**63 .. 2**64-1 (no parameter or metric holds one) or a float literal beyond the float range is a
  ``FilterError``, and so is a NUL anywhere (stored text never holds one);
- strings compare by code point (SQLite's BINARY, PostgreSQL's ``COLLATE "C"``); ``like`` is case-sensitive, ``%``
  any run, ``_`` one character, ``\\`` escapes either (a string literal's own escapes are only ``\\'``/``\\"`` and
  ``\\\\``, so ``like '100\\%'`` means what it says); ``status`` compares case-insensitively (``'completed'``);
- order: per key, experiments whose value is a number first (ordered), then strings, then the rest; ties broken by
  namespace, workspace, directory, prefix.

Syntax errors are ``FilterError`` (a ``ValueError``) naming the position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence, Union

from ml_dash.format.limits import MAX_COMPARISONS, MAX_FILTER_CHARS, MAX_FILTER_DEPTH, MAX_ORDER_KEYS
from ml_dash.format.values import INT64_MIN, UINT64_END

# Attribute fields: name → value type. camelCase spellings are accepted too (the GraphQL fields' names).
STRING_FIELDS = ("id", "namespace", "workspace", "directory", "prefix", "status", "notes")
NUMBER_FIELDS = ("started_at", "completed_at")
ALIASES = {"startedAt": "started_at", "completedAt": "completed_at"}
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
TIE_BREAK = ("namespace", "workspace", "directory", "prefix")


Literal = Union[str, int, float, bool]


class FilterError(ValueError):
    """A filter or order-by that does not parse; ``position`` is the 0-based character offset."""

    def __init__(self, what: str, message: str, position: int) -> None:
        super().__init__(f"{what}: {message} at position {position}")
        self.position = position


@dataclass(frozen=True)
class Field:
    """``kind``: "params" (``path``: the dotted keys), "metrics" (``path``: one name), "tags", or "attr" (one name)."""

    kind: str
    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def __str__(self) -> str:
        if self.kind == "tags":
            return "tags"
        return self.path[0] if self.kind == "attr" else f"{self.kind}.{self.name}"


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # one of COMPARISONS, "like" or "contains"
    value: Literal


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" / "or"
    items: tuple["Node", ...]


Node = Union[Compare, BoolOp]


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool = False


# --- tokens ---

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w]))
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<quoted>`[^`]*`)
  | (?P<word>[A-Za-z_][\w/\-]*)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[().,])
""", re.VERBOSE)


def _tokens(text: str, what: str) -> list[tuple[str, Any, int]]:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(what, f"is {len(text)} characters long, at most {MAX_FILTER_CHARS} are accepted", 0)
    if "\x00" in text:  # stored text never holds one (the server writes U+FFFD), and SQLite's C strings stop at it
        raise FilterError(what, "a NUL character is not allowed", text.index("\x00"))
    out, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position] in "'\"`":
                raise FilterError(what, "unterminated quote", position)
            raise FilterError(what, f"unexpected character {text[position]!r}", position)
        kind, raw = match.lastgroup, match.group()
        if kind == "number":
            out.append(("number", _number_literal(raw, what, position), position))
        elif kind == "string":
            out.append(("string", _unquote(raw), position))
        elif kind == "quoted":
            if len(raw) == 2:
                raise FilterError(what, "empty `quoted` name", position)
            out.append(("quoted", raw[1:-1], position))
        elif kind == "op":
            out.append(("op", {"==": "=", "<>": "!="}.get(raw, raw), position))
        elif kind != "space":
            out.append((kind, raw, position))
        position = match.end()
    out.append(("end", None, len(text)))
    return out


def _number_literal(raw: str, what: str, position: int) -> int | float:
    """An int within the 64-bit range stored values have (signed or unsigned), or a finite float; else FilterError:
    a larger int can never equal a stored int (larger ones are stored as floats), so it would only mislead."""
    shown = raw if len(raw) <= 30 else raw[:24] + "..." + raw[-3:]
    if any(c in raw for c in ".eE"):
        value = float(raw)
        if value - value != 0.0:
            raise FilterError(what, f"the number {shown} is beyond the float range", position)
        return value
    digits = raw.lstrip("-").lstrip("0")
    if len(digits) > 20 or not INT64_MIN <= int(raw) < UINT64_END:  # (int() refuses more than 4,300 digits)
        as_float = f"{raw[:len(raw) - len(digits)].rstrip('0')}{digits[0]}e{len(digits) - 1}"
        raise FilterError(what, f"the integer {shown} is outside -2**63 .. 2**64-1 (the ints parameters and metrics "
                                f"hold); write it as a float ({as_float}) to compare as one", position)
    return int(raw)


def _unquote(raw: str) -> str:
    """The string literal's text: ``\\'`` (``\\"``) is the quote, ``\\\\`` a backslash, a doubled quote the quote; any
    other backslash stays, for ``like`` to read (one layer: ``like '100\\%'`` is ``100\\%``)."""
    quote, body = raw[0], raw[1:-1]
    return re.sub(r"\\([\\" + quote + "])|" + quote * 2, lambda m: m.group(1) or quote, body)


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.what = what
        self.tokens = _tokens(text, what)
        self.i = 0
        self.depth = 0
        self.comparisons = 0

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, Any, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, message: str, position: int | None = None) -> FilterError:
        return FilterError(self.what, message, self.peek()[2] if position is None else position)

    def keyword(self, word: str) -> bool:
        kind, value, _ = self.peek()
        if kind == "word" and value.lower() == word:
            self.i += 1
            return True
        return False

    def expect_end(self) -> None:
        kind, value, position = self.peek()
        if kind != "end":
            raise self.error(f"unexpected {value!r} (expected 'and', 'or' or the end)"
                             if self.what == "filter" else f"unexpected {value!r} (expected ',' or the end)")

    # filter := or ; or := and ('or' and)* ; and := atom ('and' atom)* ; atom := '(' or ')' | comparison
    def disjunction(self) -> Node:
        items = [self.conjunction()]
        while self.keyword("or"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def conjunction(self) -> Node:
        items = [self.atom()]
        while self.keyword("and"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def atom(self) -> Node:
        kind, value, position = self.peek()
        if kind == "punct" and value == "(":
            self.take()
            self.depth += 1
            if self.depth > MAX_FILTER_DEPTH:
                raise self.error(f"parentheses nested more than {MAX_FILTER_DEPTH} deep", position)
            node = self.disjunction()
            kind, value, _ = self.peek()
            if not (kind == "punct" and value == ")"):
                raise self.error(f"expected ')' (to close the '(' at position {position})")
            self.take()
            self.depth -= 1
            return node
        return self.comparison()

    def field(self) -> Field:
        kind, value, position = self.take()
        if kind != "word":
            raise self.error("expected a field (params.<key>, metrics.<name>, tags, status, prefix, ...)"
                             if kind != "end" else "expected a field, found the end", position)
        head = value.split("/")[0]
        if head in ("params", "metrics") and value == head:
            path = []
            while self.peek()[:2] == ("punct", "."):
                self.take()
                kind, part, at = self.take()
                if kind not in ("word", "quoted", "number") or (kind == "number" and not isinstance(part, int)):
                    raise self.error(f"expected a name after '{head}.'", at)
                path.append(str(part))
            if not path:
                raise self.error(f"expected '{head}.<name>'", position)
            if head == "params" and any('"' in part for part in path):
                raise self.error('a parameter key in a filter may not contain \'"\'', position)
            return Field(head, tuple(path)) if head == "params" else Field("metrics", (".".join(path),))
        name = ALIASES.get(value, value)
        if name == "tags":
            return Field("tags", ())
        if name in STRING_FIELDS or name in NUMBER_FIELDS:
            return Field("attr", (name,))
        raise self.error(f"unknown field {value!r} (fields: params.<key>, metrics.<name>, tags, "
                         f"{', '.join(STRING_FIELDS + NUMBER_FIELDS)})", position)

    def comparison(self) -> Compare:
        start = self.peek()[2]
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.error(f"more than {MAX_COMPARISONS} comparisons", start)
        field = self.field()
        kind, op, position = self.peek()
        if kind == "op":
            self.take()
        elif kind == "word" and op.lower() in ("like", "contains"):
            self.take()
            op = op.lower()
        else:
            raise self.error("expected an operator (=, !=, <, <=, >, >=, like, contains)")
        kind, value, at = self.take()
        if kind == "word" and value.lower() in ("true", "false"):
            value, kind = value.lower() == "true", "bool"
        elif kind not in ("number", "string"):
            raise self.error("expected a value: a number, a 'string', true or false", at)
        return _typed(Compare(field, op, value), self.what, start, at)

    def order_by(self) -> tuple[OrderKey, ...]:
        keys = []
        while True:
            position = self.peek()[2]
            field = self.field()
            if field.kind == "tags":
                raise self.error("cannot order by tags", position)
            descending = False
            if self.keyword("desc"):
                descending = True
            else:
                self.keyword("asc")
            keys.append(OrderKey(field, descending))
            if len(keys) > MAX_ORDER_KEYS:
                raise self.error(f"more than {MAX_ORDER_KEYS} order keys", position)
            if self.peek()[:2] != ("punct", ","):
                break
            self.take()
        self.expect_end()
        return tuple(keys)


def _typed(node: Compare, what: str, start: int, at: int) -> Compare:
    """The comparison, or a FilterError when its operator or value cannot apply to its field."""
    field, op, value = node.field, node.op, node.value
    kind = "bool" if isinstance(value, bool) else "string" if isinstance(value, str) else "number"

    def fail(message: str, position: int = start) -> FilterError:
        return FilterError(what, message, position)

    if field.kind == "tags":
        if op != "contains" or kind != "string":
            raise fail("tags takes only: tags contains 'a tag'")
        return node
    if op == "contains":
        raise fail(f"'contains' applies to tags only, not {field}")
    if op == "like" and kind != "string":
        raise fail("'like' needs a 'pattern' string", at)
    if op == "like" and re.search(r"(?<!\\)(\\\\)*\\$", value):
        raise fail("a like pattern may not end with a lone '\\'", at)
    if kind == "bool" and op not in ("=", "!="):
        raise fail("true and false compare with = or != only", at)
    if field.kind == "metrics" and kind != "number":
        raise fail(f"{field} (a metric's last value) compares with numbers only", at)
    if field.kind == "attr":
        expected = "number" if field.path[0] in NUMBER_FIELDS else "string"
        if kind != expected:
            raise fail(f"{field} compares with {'numbers' if expected == 'number' else 'strings'} only", at)
        if field.path[0] == "status":
            return Compare(field, op, value.upper())
    return node


def parse_filter(text: str | None) -> Node | None:
    """The filter's AST; None for an empty filter. ``FilterError`` (a ``ValueError``) names the position."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text, "filter")
    node = parser.disjunction()
    parser.expect_end()
    return node


def parse_order_by(text: str | None) -> tuple[OrderKey, ...]:
    """``"metrics.loss asc, params.lr desc, startedAt desc"`` as keys; () for an empty text."""
    if text is None or not text.strip():
        return ()
    return _Parser(text, "orderBy").order_by()


# --- the Python evaluator (the local reader's; the server's is the SQL compiler) ---

def field_value(field: Field, record: Mapping[str, Any]) -> Any:
    """The field's value in an experiment ``record`` (keys as ``ml_dash.Api`` records: params, last_metrics, ...)."""
    if field.kind == "params":
        node: Any = record.get("params") or {}
        for key in field.path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node
    if field.kind == "metrics":
        return (record.get("last_metrics") or {}).get(field.path[0])
    if field.kind == "tags":
        return record.get("tags") or []
    name = field.path[0]
    value = record.get(name)
    if name == "directory" and value is None:
        return ""
    if name == "status" and isinstance(value, str):
        return value.upper()
    return value


def _number(value: Any) -> bool:
    return type(value) in (int, float) and value == value


def _typed_value(value: Any, literal: Literal) -> bool:
    if isinstance(literal, bool):
        return isinstance(value, bool)
    if isinstance(literal, str):
        return isinstance(value, str)
    return _number(value)


_OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _like_segments(pattern: str) -> list[tuple[re.Pattern, int]]:
    """The pattern split at its unescaped ``%``: each segment a regex without quantifiers (``_`` → ``.``), and its
    width in characters."""
    segments: list[list[str]] = [[]]
    for escaped, char in re.findall(r"\\(.)|(.)", pattern, re.DOTALL):
        if not escaped and char == "%":
            segments.append([])
        else:
            segments[-1].append("." if not escaped and char == "_" else re.escape(escaped or char))
    return [(re.compile("".join(parts), re.DOTALL), len(parts)) for parts in segments]


def like_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches the ``like`` pattern as a whole, without backtracking: the first segment is anchored at
    the start, the last at the end, and each one between is taken at its leftmost place after the previous one
    (segments have fixed widths, so the leftmost place never loses a match). A regex with ``.*`` for each ``%``
    backtracked: '%a%a%a%b' on 3,000 characters ran for hours."""
    segments = _like_segments(pattern)
    (first, start), (last, width) = segments[0], segments[-1]
    if len(segments) == 1:
        return first.fullmatch(text) is not None
    end = len(text) - width
    if start > end or not first.match(text) or not last.fullmatch(text, end):
        return False
    for segment, _ in segments[1:-1]:
        found = segment.search(text, start, end)
        if found is None:
            return False
        start = found.end()
    return True


def matches(node: Node | None, record: Mapping[str, Any]) -> bool:
    """Whether the experiment ``record`` passes the filter (None passes everything)."""
    if node is None:
        return True
    if isinstance(node, BoolOp):
        test = all if node.op == "and" else any
        return test(matches(item, record) for item in node.items)
    value = field_value(node.field, record)
    if node.op == "contains":
        return isinstance(value, list) and node.value in value
    if not _typed_value(value, node.value):
        return False
    if node.op == "like":
        return like_match(node.value, value)
    return _OPS[node.op](value, node.value)


def _rank(value: Any) -> int:
    return 0 if _number(value) else 1 if isinstance(value, str) else 2


def sort_records(records: Iterable[Mapping[str, Any]], keys: Sequence[OrderKey]) -> list:
    """``records`` in the order the server's SQL gives: each key numbers first, then strings, then the rest; the
    tie-break keys last."""
    rows = list(records)
    for name in reversed(TIE_BREAK):  # stable sorts, least significant first
        rows.sort(key=lambda r: field_value(Field("attr", (name,)), r) or "")
    for key in reversed(keys):
        groups: list[list] = [[], [], []]
        for row in rows:
            groups[_rank(field_value(key.field, row))].append(row)
        for group in groups[:2]:
            group.sort(key=lambda r: field_value(key.field, r), reverse=key.descending)
        rows = groups[0] + groups[1] + groups[2]
    return rows


DEFAULT_ORDER = (OrderKey(Field("attr", ("started_at",)), True),)

