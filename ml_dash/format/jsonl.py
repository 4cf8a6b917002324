"""Reading the append-only JSONL files, tolerating the torn last line a crash may leave."""
from __future__ import annotations

import os

import orjson


def read_jsonl(path: str, start: int = 0, end: int | None = None) -> list[dict]:
    """Parse whole lines of ``path`` between byte offsets; an unterminated or corrupt line is skipped, not fatal."""
    return [record for record, _ in iter_jsonl(path, start, end)]


def iter_jsonl(path: str, start: int = 0, end: int | None = None):
    """Yield ``(record, end_offset)`` for each complete line; stops before an unterminated tail."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(max(0, end - start))
    except FileNotFoundError:
        return
    offset = start
    lines = data.split(b"\n")
    lines.pop()  # what follows the last newline: empty, or a line still being written / torn by a crash
    for line in lines:
        offset += len(line) + 1
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn line followed by later appends: skip it, keep the rest
        if isinstance(record, dict):
            yield record, offset


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
