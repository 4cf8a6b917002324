"""Media through a real server on 127.0.0.1: every type round-trips, batches survive faults exactly once, the REST
views answer with thumbnails and histograms by step range (docs/media.md)."""
from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

import ml_dash
from ml_dash import Audio, Histogram, Image, Table, Video

from tests.upload.conftest import find_experiment_id, remote_env, server  # noqa: F401  (fixtures)
from tests.upload.fault_proxy import FaultProxy

RNG = np.random.default_rng(1)


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.headers, answer.read()


def _api(server, prefix):
    api = ml_dash.Api(remote=server)
    return api.experiment(find_experiment_id(server, prefix))


def test_every_type_round_trips_through_a_server(make_exp, server, remote_env):
    rgb = RNG.integers(0, 256, (300, 200, 3), dtype=np.uint8)  # over the thumbnail size: one is made
    small = RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    clip = RNG.integers(-32768, 32767, (400, 1), dtype=np.int16)
    frames = RNG.integers(0, 256, (3, 10, 12, 3), dtype=np.uint8)
    exp = make_exp("media", remote=server)
    with exp.run():
        for step in range(5):
            exp.media.log(step=step, samples=[Image(rgb, caption=f"step {step}"), Image(small)],
                          weights=Histogram(RNG.normal(step, 1, 5000), bins=20))
        exp.media("val").log(step=9, clip=Audio(clip, 22050), video=Video(frames, fps=3, format="apng"),
                             table=Table([["a", Image(small)], ["b", None]], ["name", "img"]))
    record = _api(server, "media")
    keys = {k["key"]: k for k in record.media_keys()}
    assert keys["samples"] == {"key": "samples", "kind": "image", "count": 10, "step_min": 0, "step_max": 4}
    assert set(keys) == {"samples", "weights", "val.clip", "val.video", "val.table"}
    items = list(record.media("samples", step_min=1, step_max=2))
    assert [s for s, _ in items] == [1, 1, 2, 2]
    assert np.array_equal(items[0][1], rgb) and np.array_equal(items[1][1], small)
    local = ml_dash.Api(local_root=exp.local_path.rsplit("/alice/", 1)[0]).experiment(exp.local_path)
    remote_h, local_h = record.histograms("weights"), local.histograms("weights")
    assert remote_h["step"].tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(remote_h["counts"], local_h["counts"]) and np.array_equal(remote_h["edges"], local_h["edges"])
    assert record.histograms("weights", step_min=3)["step"].tolist() == [3, 4]
    (_, (samples, rate)), = record.media("val.clip")
    assert rate == 22050 and np.array_equal(samples, clip)
    (_, video), = record.media("val.video")
    assert np.array_equal(video, frames)
    (_, table), = record.media("val.table")
    assert table["rows"][0][0] == "a" and np.array_equal(table["rows"][0][1], small)

    eid = record.id
    page = json.loads(_get(f"{server}/api/v1/experiments/{eid}/media/samples?step_min=4")[1])
    assert page["total"] == 2 and [i["caption"] for i in page["items"]] == ["step 4", None]
    headers, thumb = _get(server + page["items"][0]["thumbnail_url"])
    assert headers["Content-Type"] == "image/png"
    from ml_dash.format.codecs import decode_png

    assert max(decode_png(thumb).shape[:2]) <= 256 and decode_png(thumb).shape[:2] == (150, 100)
    assert page["items"][1]["thumbnail_url"] == page["items"][1]["url"]  # small: the item is its own thumbnail
    steps = json.loads(_get(f"{server}/api/v1/experiments/{eid}/media-steps/samples")[1])
    assert steps["steps"] == [0, 1, 2, 3, 4]
    heat = json.loads(_get(f"{server}/api/v1/experiments/{eid}/histogram-heatmap/weights?columns=2&bins=8")[1])
    assert [c["count"] for c in heat["columns"]] == [2, 3] and len(heat["values"]) == 2  # every step counted
    assert all(abs(sum(column) - 1) < 1e-4 for column in heat["values"])


def test_media_batches_survive_faults_exactly_once(make_exp, server, remote_env):
    """500/429/503 and connections cut before and after the server stored a media batch: each item once."""
    remote_env(UPLOAD_BATCH_BYTES=20_000, RETRY_BASE=0.001, RETRY_CAP=0.005)
    images = [RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(60)]
    with FaultProxy(server, fault_rate=0.3, retry_after="0.01") as proxy:
        exp = make_exp("faulty-media", remote=proxy.url)
        with exp.run():
            for step, img in enumerate(images):
                exp.media.log(step=step, img=Image(img))
                if step % 10 == 9:
                    exp.flush()
    assert {"cut_after", "cut_before"} <= set(proxy.injected)
    assert any(stream == "media" for _, stream, *_ in proxy.batches)
    got = list(_api(server, "faulty-media").media("img"))
    assert [s for s, _ in got] == list(range(60))
    assert all(np.array_equal(a, b) for (_, a), b in zip(got, images))


def test_an_upload_killed_midway_resumes_exactly_once_with_sync(make_exp, server, remote_env, tmp_path):
    """The process dies with media half uploaded; ``ml-dash sync`` sends the rest, and no item twice."""
    from ml_dash.client.upload.sync_command import sync_paths

    # UPLOAD_TIMEOUT: complete() below does not wait long for an uploader that is gone (as after a kill)
    remote_env(UPLOAD_BATCH_BYTES=8_000, UPLOAD_TIMEOUT="2")
    images = [RNG.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(40)]
    with FaultProxy(server, fault_rate=0.0, stall_after=6) as proxy:
        exp = make_exp("killed", remote=proxy.url)
        exp.run()
        for step, img in enumerate(images):
            exp.media.log(step=step, img=Image(img))
        exp.flush()
        assert proxy.stalled.wait(30)
        from ml_dash.client.upload.uploader import detach_all

        detach_all()  # the upload thread gone as with a killed process: nothing more is sent
        proxy.release()
    exp.complete()
    eid = find_experiment_id(server, "killed")
    before = json.loads(_get(f"{server}/api/v1/experiments/{eid}/media/img?limit=1000")[1])["total"]
    assert before < 40
    root = exp.local_path.rsplit("/alice/", 1)[0]
    sync_paths([exp.local_path], remote=server, show_progress=False)
    got = list(_api(server, "killed").media("img"))
    assert [s for s, _ in got] == list(range(40))
