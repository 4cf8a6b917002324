"""Media logged locally: every type round-trips, captures are cheap and safe, torn tails are skipped, bad input is
refused where it is made (docs/media.md)."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import ml_dash
from ml_dash import Audio, Histogram, Image, Table, Video
from ml_dash.format.layout import media_segment_path, stream_path

RNG = np.random.default_rng(0)


def _record(exp):
    exp.flush()
    return ml_dash.Api(local_root=os.path.dirname(os.path.dirname(os.path.dirname(exp.local_path)))).experiment(
        exp.local_path)


def test_every_type_round_trips_locally(make_exp):
    exp = make_exp()
    rgb = RNG.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    rgba = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    gray = RNG.integers(0, 256, (9, 4), dtype=np.uint8)
    unit = RNG.random((6, 6, 3))
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    clip16 = RNG.integers(-32768, 32767, (300, 2), dtype=np.int16)
    clipf = RNG.uniform(-1, 1, 200).astype(np.float32)
    frames = RNG.integers(0, 256, (4, 6, 8, 3), dtype=np.uint8)
    values = RNG.normal(size=10_000)
    with exp.run():
        for step in range(3):
            exp.media.log(step=step, samples=[Image(rgb, caption=f"s{step}"), Image(rgba), Image(gray)],
                          weights=Histogram(values + step, bins=32))
        exp.media.log(step=3, unit=Image(unit), chw=Image(chw), pre=Histogram(edges=[0, 1, 2], counts=[3, 4]))
        exp.media("val").log(step=4, a16=Audio(clip16, 16000), af=Audio(clipf, 8000),
                             v=Video(frames, fps=4, format="apng"),
                             t=Table([[1, "x", Image(rgb)], [2.5, None, Image(gray)]], ["n", "s", "img"]))
    record = _record(exp)
    keys = {k["key"]: k for k in record.media_keys()}
    assert keys["samples"] == {"key": "samples", "kind": "image", "count": 9, "step_min": 0, "step_max": 2}
    samples = list(record.media("samples"))
    assert [s for s, _ in samples] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.array_equal(samples[0][1], rgb) and np.array_equal(samples[1][1], rgba)
    assert np.array_equal(samples[2][1][:, :, 0], gray)
    assert [e["caption"] for e, _ in record.media_entries("samples", step_min=1, step_max=1)] == ["s1", None, None]
    (_, unit_back), = record.media("unit")
    assert np.array_equal(unit_back, np.rint(unit * 255).astype(np.uint8))
    (_, chw_back), = record.media("chw")
    assert np.array_equal(chw_back, rgb)
    h = record.histograms("weights")
    assert h["step"].tolist() == [0, 1, 2] and h["counts"].shape == (3, 32) and h["edges"].shape == (3, 33)
    assert h["counts"].sum(axis=1).tolist() == [10_000] * 3
    expected, edges = np.histogram(values + 1, 32)
    assert np.array_equal(h["counts"][1], expected) and np.allclose(h["edges"][1], edges)
    pre = record.histograms("pre")
    assert pre["counts"].tolist() == [[3, 4]] and pre["edges"].tolist() == [[0, 1, 2]]
    (_, (s16, r16)), = record.media("val.a16")
    assert r16 == 16000 and np.array_equal(s16, clip16)
    (_, (sf, _)), = record.media("val.af")
    assert np.array_equal(sf[:, 0], clipf)
    (_, video), = record.media("val.v")
    assert np.array_equal(video, frames)
    (_, table), = record.media("val.t")
    assert table["columns"] == ["n", "s", "img"] and table["rows"][0][:2] == [1, "x"]
    assert np.array_equal(table["rows"][0][2], rgb) and table["rows"][1][1] is None


def test_a_caller_buffer_reused_after_logging_does_not_change_what_was_logged(make_exp):
    exp = make_exp()
    buffer = np.zeros((4, 4, 3), np.uint8)
    weights = np.zeros(100)
    with exp.run():
        exp.media.log(step=0, img=Image(buffer), h=Histogram(weights))
        buffer[:] = 255
        weights[:] = 7
    record = _record(exp)
    assert list(record.media("img"))[0][1].max() == 0
    assert record.histograms("h")["edges"][0][0] == -0.5  # all zeros: a unit range around 0


torch = pytest.importorskip("torch")
_READS = {"cpu", "numpy", "item", "tolist", "__array__", "min", "max", "aminmax", "__bool__", "__float__", "to",
          "__getitem__", "histc", "isfinite"}


class DeviceLike(torch.Tensor):
    """A tensor that says it is not on the CPU, recording which functions each thread calls on it."""

    calls: list[tuple[str, str]] = []

    @property
    def is_cpu(self):
        return False

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls.append((threading.current_thread().name, getattr(func, "__name__", str(func))))
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_device_tensor_is_cloned_not_read_on_the_caller(make_exp):
    exp = make_exp()
    pixels = torch.rand(3, 8, 8).as_subclass(DeviceLike)
    weights = torch.randn(1000).as_subclass(DeviceLike)
    DeviceLike.calls.clear()
    caller = threading.current_thread().name
    with exp.run():
        exp.media.log(step=0, img=Image(pixels), h=Histogram(weights, bins=10))
        on_caller = [name for thread, name in DeviceLike.calls if thread == caller]
        assert not _READS.intersection(on_caller), on_caller
        assert "clone" in on_caller
        exp.flush()
    record = _record(exp)
    (_, img), = record.media("img")
    assert np.array_equal(img, np.rint(pixels.as_subclass(torch.Tensor).numpy().transpose(1, 2, 0) * 255))
    h = record.histograms("h")
    assert h["counts"].sum() == 1000


def test_a_torn_segment_tail_and_a_torn_index_line_are_skipped(make_exp):
    exp = make_exp()
    first = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    with exp.run():
        exp.media.log(step=0, img=Image(first))
        exp.media.log(step=1, img=Image(first[::-1].copy()))
    exp.flush()
    segment = media_segment_path(exp.local_path, 0)
    size = os.path.getsize(segment)
    with open(segment, "r+b") as f:  # the second item's bytes cut short (a crash before they reached the disk)
        f.truncate(size - 10)
    with open(stream_path(exp.local_path, "media"), "ab") as f:
        f.write(b'{"timestamp": 1.0, "step": 2, "key": "img", "ki')  # a torn index line
    record = _record(exp)
    assert [(s, np.array_equal(i, first)) for s, i in record.media("img")] == [(0, True)]


@pytest.mark.parametrize("make, message", [
    (lambda: Image(np.full((4, 4, 4), 1.5, np.float32)), r"Image\(data=...\): a float image holds values in \[0, 1\]"),
    (lambda: Image(np.full((4, 4, 3), np.nan)), r"Image\(data=...\)"),
    (lambda: Image(np.zeros((6, 6, 5), np.uint8)), r"Image\(data=...\): an image is HxW"),
    (lambda: Image(np.zeros((4, 4), np.int64)), r"Image\(data=...\): pixels must be uint8"),
    (lambda: Image(np.zeros((4, 4), np.uint8), caption=3), r"Image\(caption=...\)"),
    (lambda: Image("/no/such/file.png"), r"Image\(data='/no/such/file.png'\): no such file"),
    (lambda: Image(np.zeros((4, 4), np.uint8), format="gif"), r"Image\(format='gif'\)"),
    (lambda: Histogram(np.zeros(3), bins=10**9), r"Histogram\(bins=1000000000\): bins must be an int from 1"),
    (lambda: Histogram(np.zeros(0)), r"Histogram\(values=...\): the array is empty"),
    (lambda: Histogram(edges=[0, 1], counts=[1, 2]), r"Histogram\(edges=...\): 2 counts need 3 edges"),
    (lambda: Histogram(edges=[0, 2, 1], counts=[1, 2]), r"Histogram\(edges=...\): edges must be finite and strictly"),
    (lambda: Histogram(edges=[0, 1, 2], counts=[1, -2]), r"Histogram\(counts=...\): counts must be finite"),
    (lambda: Histogram(np.array(["a"])), r"Histogram\(values=...\): values must be numbers"),
    (lambda: Audio(np.zeros(10), rate=0), r"Audio\(rate=0\)"),
    (lambda: Audio(np.full(10, 2.0), rate=8000), r"Audio\(samples=...\): float samples are in \[-1, 1\]"),
    (lambda: Audio(np.zeros(10, np.int32), rate=8000), r"Audio\(samples=...\): samples must be int16 or float"),
    (lambda: Video(np.zeros((2, 4, 4, 3), np.uint8), fps=0), r"Video\(fps=0\)"),
    (lambda: Video(np.zeros((4, 4, 3), np.uint8)), r"Video\(frames=...\): frames are TxHxWxC"),
    (lambda: Table([]), r"Table\(data=...\): a table needs at least one row"),
    (lambda: Table([[1, 2]], ["a"]), r"Table\(data=...\): row 0 has 2 cells for 1 columns"),
    (lambda: Table([[object()]]), r"Table\(data=...\): the cell at row 0, column '0' is a object"),
])
def test_bad_input_is_refused_where_it_is_made_naming_the_argument(make, message):
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=message):
        make()


def test_media_log_refuses_what_is_not_media(make_exp):
    exp = make_exp()
    with pytest.raises(TypeError, match=r"media.log: img= must be an Image"):
        exp.media.log(step=0, img=np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"media.log: img\[1\] must be an Image"):
        exp.media.log(step=0, img=[Image(np.zeros((2, 2), np.uint8)), 3])
    with pytest.raises(TypeError, match=r"media.log: step= must be an int"):
        exp.media.log(step="x", img=Image(np.zeros((2, 2), np.uint8)))
    exp.complete()


def test_a_media_flood_is_bounded_in_bytes_and_the_drop_policy_counts_what_it_drops(make_exp, monkeypatch):
    from ml_dash.client.pipeline.process import PIPELINE

    exp = make_exp()
    exp.run()
    exp.flush()
    monkeypatch.setattr(PIPELINE, "byte_budget", 10_000)
    monkeypatch.setattr(PIPELINE, "on_full", "drop")
    img = np.zeros((32, 32, 3), np.uint8)  # 3072 bytes captured each
    before = PIPELINE.sized_dropped
    with PIPELINE.writer_held():  # the writer cannot free anything meanwhile
        results = [exp.media.log(step=i, img=Image(img)) for i in range(10)]
        assert PIPELINE.queued_bytes == 3 * 3072
    assert results == [True] * 3 + [False] * 7
    assert PIPELINE.sized_dropped - before == 7 and exp.media.dropped == PIPELINE.sized_dropped
    exp.complete()
    assert PIPELINE.queued_bytes == 0
    assert [e["step"] for e in exp.media.read()] == [0, 1, 2]
    from ml_dash.format.layout import read_meta

    assert read_meta(exp.local_path)["dropped_events"] == 7


def test_a_media_flood_under_block_waits_for_the_writer_and_loses_nothing(make_exp, monkeypatch):
    from ml_dash.client.pipeline.process import PIPELINE

    exp = make_exp()
    monkeypatch.setattr(PIPELINE, "byte_budget", 10_000)
    monkeypatch.setattr(PIPELINE, "on_full", "block")
    img = np.zeros((32, 32, 3), np.uint8)
    peak = []
    with exp.run():
        for i in range(40):
            exp.media.log(step=i, img=Image(img))
            peak.append(PIPELINE.queued_bytes)
    assert max(peak) <= 10_000
    assert [e["step"] for e in exp.media.read()] == list(range(40))
