"""A batch of the ``media`` stream: whole index lines by byte range, as for every stream, plus ``payload``: the
bytes each line names, read from the segment files and concatenated in line order (docs/media.md).

Both sides walk the lines with ``format.jsonl.parse_lines`` and ``format.media.payload_span``, so the server finds
each entry's bytes without an offset table. Exactly-once is the index stream's byte-range protocol: a resent range
carries the same payload, which the server stores under the same content address and whose rows it refuses as a
duplicate. An entry whose bytes are gone locally is sent with zeros in their place: its digest then fails and the
server leaves it out, keeping every offset exact.
"""
from __future__ import annotations

from ml_dash.client.upload.window import read_batch
from ml_dash.format.jsonl import parse_lines
from ml_dash.format.layout import media_segment_path
from ml_dash.format.media import payload_span


def read_media_batch(directory: str, path: str, start: int, max_events: int,
                     max_bytes: int) -> tuple[bytes, int, int, bool, bytes]:
    """(lines, line count, end, full, payload): lines from ``start`` until their payload reaches about
    ``max_bytes`` (at least one line, so one large item still travels alone)."""
    lines, count, end, full = read_batch(path, start, max_events, max_bytes)
    if not lines:
        return lines, count, end, full, b""
    parts: list[bytes] = []
    files: dict = {}
    size = used = kept = 0
    try:
        for line in lines.splitlines(keepends=True):
            records = parse_lines(line)
            span = payload_span(records[0]) if records else None
            if span is not None:
                if kept and size + span[2] > max_bytes:
                    full = True
                    break
                parts.append(_read(files, directory, *span))
                size += span[2]
            used += len(line)
            kept += 1
    finally:
        for f in files.values():
            f.close()
    return lines[:used], kept, start + used, full, b"".join(parts)


def _read(files: dict, directory: str, segment: int, offset: int, length: int) -> bytes:
    f = files.get(segment)
    if f is None:
        try:
            f = files[segment] = open(media_segment_path(directory, segment), "rb")
        except FileNotFoundError:
            return bytes(length)
    f.seek(offset)
    data = f.read(length)
    return data + bytes(length - len(data))
