"""The JSONL sink on a filling disk: a short write then ENOSPC keeps only the unwritten bytes for the retry."""
import errno
import os

import orjson
import pytest

from ml_dash.client.sinks import jsonl
from ml_dash.client.sinks.jsonl import LocalStore, StoreError


class FillingDisk:
    """Stands in for ``os.writev``: takes at most ``room`` more bytes (a short write), then raises ENOSPC."""

    def __init__(self, room):
        self.room = room

    def __call__(self, fd, buffers):
        if self.room is None:
            return os.writev(fd, buffers)
        if self.room == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = os.write(fd, b"".join(buffers)[:self.room])
        self.room -= written
        return written


def lines(start, stop):
    return [orjson.dumps({"step": i, "metrics": {"loss": i / 7}}) + b"\n" for i in range(start, stop)]


def test_short_write_then_enospc_keeps_only_the_unwritten_bytes(tmp_path, monkeypatch):
    disk = FillingDisk(room=100)  # cuts the second line in the middle
    monkeypatch.setattr(jsonl, "_writev", disk)
    store = LocalStore(0, str(tmp_path))
    with pytest.raises(StoreError):
        store.append("metrics", lines(0, 10))
    assert store.has_pending
    with pytest.raises(StoreError):  # still full: nothing new is written, nothing is lost
        store.append("metrics", lines(10, 12))
    disk.room = None  # space is freed
    store.append("metrics", lines(12, 13))
    store.close()
    with open(store.path("metrics"), "rb") as f:
        content = f.read()
    assert content == b"".join(lines(0, 13))  # each line once, in order; the cut line was completed, not rewritten
    assert not store.has_pending


def test_disk_full_mid_run_loses_and_duplicates_nothing(make_exp, monkeypatch):
    disk = FillingDisk(room=None)
    monkeypatch.setattr(jsonl, "_writev", disk)
    exp = make_exp("full-disk")
    exp.run()
    for step in range(1000):
        exp.metrics.log(step=step, loss=step * 0.5)
    assert exp.flush(30)
    disk.room = 1234  # the disk fills up in the middle of a batch
    for step in range(1000, 5000):
        exp.metrics.log(step=step, loss=step * 0.5)
    assert not exp.flush(0.5)  # the writer keeps the rest and reports the error
    for step in range(5000, 6000):
        exp.metrics.log(step=step, loss=step * 0.5)
    disk.room = None
    assert exp.flush(30)
    exp.complete()
    with open(os.path.join(exp.local_path, "metrics.jsonl"), "rb") as f:
        raw = f.read()
    rows = [orjson.loads(line) for line in raw.splitlines()]  # a torn line would not parse
    assert [row["step"] for row in rows] == list(range(6000))
    assert raw.endswith(b"\n")


def recording(writes):
    def recording_writev(fd, buffers):
        writes.append(list(buffers))
        return os.writev(fd, buffers)
    return recording_writev


def test_a_batch_goes_down_in_few_writes_of_whole_lines(tmp_path, monkeypatch):
    """A batch is appended with writev() calls of at most _WRITE_BUFFERS buffers, each ending at a line's end."""
    writes = []
    monkeypatch.setattr(jsonl, "_writev", recording(writes))
    store = LocalStore(0, str(tmp_path))
    batch = lines(0, 5_000)
    store.append("metrics", batch)
    store.close()
    with open(store.path("metrics"), "rb") as f:
        assert f.read() == b"".join(batch)
    assert len(writes) == -(-5_000 // jsonl._WRITE_BUFFERS)
    assert all(len(w) <= jsonl._WRITE_BUFFERS and bytes(w[-1]).endswith(b"\n") for w in writes)


def test_a_write_never_ends_inside_a_line_split_over_buffers(tmp_path, monkeypatch):
    """Buffers whose newline comes in the next one (the metric encoder's) are never cut apart between writes."""
    writes = []
    monkeypatch.setattr(jsonl, "_writev", recording(writes))
    monkeypatch.setattr(jsonl, "_WRITE_BYTES", 100)
    store = LocalStore(0, str(tmp_path))
    batch = [b'{"a":1}\n{"a":2}', b"\n", b'{"a":3}', b"\n"] * 20 + [b"x" * 300, b"\n"]  # the last line is over the limit
    store.append("metrics", batch)
    store.close()
    with open(store.path("metrics"), "rb") as f:
        assert f.read() == b"".join(batch)
    assert len(writes) > 1
    assert all(bytes(w[-1]).endswith(b"\n") for w in writes)
    assert sum(len(b) for b in writes[-1]) > 100  # one line past the byte limit still goes down whole


def test_export_drops_the_batchs_references_as_it_goes(make_exp):
    """The sink consumes a batch: every item is released (so events are freed in pieces), and all rows are written."""
    from ml_dash.client.pipeline.process import PIPELINE

    exp = make_exp()
    exp.metrics.log(step=0, loss=0.0)
    assert exp.flush()
    with PIPELINE.writer_held():  # the writer waits: this test hands the sink its batch itself
        for step in range(1, 1000):
            exp.metrics.log(step=step, loss=step / 2)
        batch = [PIPELINE.queue.popleft() for _ in range(len(PIPELINE.queue))]
        PIPELINE.sink.export(batch)
    assert batch == [None] * 999
    assert [r["step"] for r in exp.metrics.read()] == list(range(1000))
