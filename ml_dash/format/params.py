"""The one replay of parameter operations: what ``exp.params.read()`` and every server read return.

``set`` replaces everything with its ``data``; ``extend`` deep-merges its ``data``; ``update`` sets one dotted key
(``"model.lr"``) to ``value``, or, written without a key, deep-merges its ``data`` as ``extend`` does. Records with
any other operation, or whose key is not a string, change nothing: a reader never fails on what a writer stored.
"""
from __future__ import annotations

from typing import Any


def replay(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters after applying the operation ``records`` in order (never mutates them)."""
    params: dict[str, Any] = {}
    for record in records:
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
