"""The one replay of parameter operations: what ``exp.params.read()`` and every server read return.

``set`` replaces everything with its ``data``; ``extend`` deep-merges its ``data``; ``update`` sets one dotted key
(``"model.lr"``) to ``value``, or, written without a key, deep-merges its ``data`` as ``extend`` does. Records with
any other operation, or whose key is not a string, change nothing: a reader never fails on what a writer stored.

Nesting: the result is at most ``MAX_NESTING`` levels deep (the top-level dict is level 1). One operation's
``contribution_depth`` is exactly the depth of the branch it writes, and an operation never makes any *other* branch
deeper, so the result is never deeper than the deepest operation applied: checking each operation's contribution (as
the client does at the call site and the server at ingest) bounds the replay without replaying. An operation deeper
than the limit (stored before the limit existed) is skipped here, so a read never fails on it.
"""
from __future__ import annotations

from typing import Any

from ml_dash.format.limits import MAX_NESTING


def depth(value: Any, stop: int = MAX_NESTING + 1) -> int:
    """Levels of dicts/lists in ``value`` (a scalar is 0, ``{}`` is 1, ``{"a": []}`` is 2), counted up to ``stop``.

    Iterative, so a value nested far deeper than Python's recursion limit is measured, not a ``RecursionError``."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, level = todo.pop()
        if type(node) is dict:
            children = node.values()
        elif type(node) is list:
            children = node
        else:
            continue
        if level > deepest:
            deepest = level
            if deepest >= stop:
                return stop
        todo.extend((child, level + 1) for child in children if type(child) in (dict, list))
    return deepest


def contribution_depth(record: dict[str, Any]) -> int:
    """How deep the parameters are along the branch this operation writes (0 for a record that changes nothing).

    ``set``/``extend``/key-less ``update``: the depth of ``data`` (a dict, so at least 1). ``update`` of ``"a.b.c"``:
    one level per dotted part plus the depth of ``value``."""
    operation = record.get("operation")
    if operation == "update" and "key" in record:
        key = record["key"]
        if not isinstance(key, str) or not key:
            return 0
        parts = key.count(".") + 1
        return parts + depth(record.get("value"), max(1, MAX_NESTING + 1 - parts))
    data = record.get("data")
    if operation in ("set", "extend", "update") and isinstance(data, dict):
        return depth(data)
    return 0


def check_nesting(record: dict[str, Any]) -> None:
    """``ValueError`` if applying ``record`` would nest the parameters deeper than ``MAX_NESTING`` levels."""
    levels = contribution_depth(record)
    if levels > MAX_NESTING:
        what = f"key {record['key'][:40]!r}..." if "key" in record else "data"
        raise ValueError(f"this {record.get('operation')} ({what}) would nest the parameters more than "
                         f"{MAX_NESTING} levels deep (each dotted part of a key is a level)")


def replay(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters after applying the operation ``records`` in order (never mutates them).

    A record nested deeper than ``MAX_NESTING`` is skipped (see the module docstring)."""
    params: dict[str, Any] = {}
    for record in records:
        if contribution_depth(record) > MAX_NESTING:
            continue
        operation = record.get("operation")
        data = record.get("data")
        if operation == "set":
            params = _copy(data) if isinstance(data, dict) else {}
        elif operation == "update" and "key" in record:
            key = record["key"]
            if isinstance(key, str) and key:
                set_dotted(params, key, record.get("value"))
        elif operation in ("extend", "update") and isinstance(data, dict):
            deep_merge(params, data)
    return params


def deep_merge(base: dict, extra: dict) -> dict:
    """Merge ``extra`` into ``base`` in place: nested dicts merge, anything else replaces."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = _copy(v)
    return base


def set_dotted(params: dict, key: str, value: Any) -> None:
    """``params["a"]["b"] = value`` for ``key == "a.b"``, creating (or replacing non-dict) parents."""
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = _copy(value)


def _copy(value: Any) -> Any:
    # JSON values only: dicts and lists are the only containers, so this is a complete deep copy.
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value
