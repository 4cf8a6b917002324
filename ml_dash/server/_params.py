"""Merge stored parameter operations into the dict ``exp.parameters.read()`` would return.

``set`` replaces everything, ``extend`` deep-merges, ``update`` sets one dotted key (``"model.lr"``). Kept apart from
any backend so SQLite and PostgreSQL answer identically.
"""
from __future__ import annotations

from typing import Any


def merge_parameters(records: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for record in records:
        operation = record.get("operation")
        if operation == "set":
            merged = _deep_copy(record.get("data") or {})
        elif operation == "extend":
            _deep_merge(merged, record.get("data") or {})
        elif "key" in record:
            _set_dotted(merged, record["key"], record.get("value"))
        else:  # "update" with a data dict behaves like a shallow-per-key extend
            _deep_merge(merged, record.get("data") or {})
    return merged


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    return value


def _deep_merge(target: dict, source: dict) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = _deep_copy(value)


def _set_dotted(target: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[leaf] = _deep_copy(value)
