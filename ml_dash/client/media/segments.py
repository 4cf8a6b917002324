"""Writer side: the packed segment files that hold encoded media, appended to and never rewritten.

One segment grows to ``SEGMENT_BYTES`` and the next starts (``media/000000.seg``, ``media/000001.seg``...). Each
item's bytes go in with one ``O_APPEND`` write, so processes sharing an experiment (DDP ranks) never interleave
inside an item; where they landed is read back from the descriptor's offset. An item's index line is written after
its bytes (``client/sinks/jsonl.py``), so bytes without a line (a crash between the two) are only dead space, and a
line whose bytes are not whole fails its digest and is skipped by every reader.
"""
from __future__ import annotations

import os

from ml_dash.format.layout import media_segment_path, media_segments

SEGMENT_BYTES = 256 << 20


class SegmentWriter:
    def __init__(self, directory: str, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.segment = -1
        self.fd: int | None = None

    def _open(self, segment: int) -> int:
        path = media_segment_path(self.directory, segment)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.close()
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.segment = segment
        return self.fd

    def append(self, payload: bytes) -> tuple[int, int]:
        """Write ``payload`` whole at the end of the current segment; (segment, offset). ``OSError`` if it could
        not be written whole (a short write leaves dead bytes that no index line names)."""
        fd = self.fd
        if fd is None:
            found = media_segments(self.directory)
            fd = self._open(found[-1] if found else 0)
        if os.fstat(fd).st_size >= self.segment_bytes:
            fd = self._open(max([self.segment, *media_segments(self.directory)]) + 1)
        written = os.write(fd, payload)
        end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: the write went to the end, and the offset follows it
        if written != len(payload):
            raise OSError(f"{media_segment_path(self.directory, self.segment)}: short write ({written} of "
                          f"{len(payload)} bytes; disk full?)")
        return self.segment, end - written

    def sync(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
