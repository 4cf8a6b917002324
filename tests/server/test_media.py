"""Media ingest and reads on both backends: a batch's entries checked against its payload, stored once, read back
by key and step range; histograms as rows and as a heatmap (docs/media.md)."""
from __future__ import annotations

import numpy as np
import orjson

from ml_dash import Histogram, Image
from ml_dash.client.upload.media_batch import read_media_batch
from ml_dash.format.layout import stream_path

from .conftest import packb


def _logged(make_exp):
    exp = make_exp()
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(4)]
    with exp.run():
        for step, img in enumerate(images):
            exp.media.log(step=step, img=Image(img, caption=f"c{step}"), h=Histogram(rng.normal(size=100), bins=4))
    path = stream_path(exp.local_path, "media")
    lines, count, end, full, payload = read_media_batch(exp.local_path, path, 0, 1000, 1 << 20)
    return images, lines, end, payload


async def _post(client, eid, lines, end, payload):
    body = {"stream": "media", "stream_id": "m", "start": 0, "end": end, "lines": lines, "payload": payload}
    return await client.post(f"/api/v1/experiments/{eid}/batches", data=packb(body),
                             headers={"Content-Type": "application/msgpack"})


async def _experiment(client):
    answer = await client.post("/api/v1/experiments", json={"namespace": "a", "workspace": "w", "prefix": "p"})
    return (await answer.json())["experiment_id"]


async def test_a_media_batch_is_stored_once_and_read_back(client, make_exp):
    images, lines, end, payload = _logged(make_exp)
    eid = await _experiment(client)
    first = await (await _post(client, eid, lines, end, payload)).json()
    assert first == {"acked": end, "stored": 8}
    again = await (await _post(client, eid, lines, end, payload)).json()
    assert again["duplicate"] is True and again["stored"] == 0
    keys = (await (await client.get(f"/api/v1/experiments/{eid}/media")).json())["keys"]
    assert [(k["key"], k["kind"], k["count"]) for k in keys] == [("h", "histogram", 4), ("img", "image", 4)]
    page = await (await client.get(f"/api/v1/experiments/{eid}/media/img?step_min=1&step_max=2")).json()
    assert [(i["step"], i["caption"], i["shape"]) for i in page["items"]] == [(1, "c1", [6, 5, 3]), (2, "c2", [6, 5, 3])]
    raw = await (await client.get(page["items"][0]["url"])).read()
    from ml_dash.format.codecs import decode_png

    assert np.array_equal(decode_png(raw), images[1])
    hist = await (await client.get(f"/api/v1/experiments/{eid}/histograms/h?step_min=2")).json()
    assert hist["steps"] == [2, 3] and [sum(c) for c in hist["counts"]] == [100, 100]
    heat = await (await client.get(f"/api/v1/experiments/{eid}/histogram-heatmap/h?columns=10&bins=5")).json()
    assert [c["step_min"] for c in heat["columns"]] == [0, 1, 2, 3] and len(heat["values"][0]) == 5


async def test_an_entry_whose_bytes_do_not_match_its_digest_is_rejected_alone(client, make_exp):
    _, lines, end, payload = _logged(make_exp)
    eid = await _experiment(client)
    first = orjson.loads(lines.split(b"\n", 1)[0])
    spoiled = bytes([payload[0] ^ 0xFF]) + payload[1:]  # the first entry's first byte
    answer = await (await _post(client, eid, lines, end, spoiled)).json()
    assert answer["stored"] == 7 and answer["rejected"] == [{"index": 0, "error": "its bytes do not match its digest"}]
    assert first["key"] == "img"
    short = await _post(client, eid, lines, end, payload[:-1])
    assert short.status == 400 and "payload" in (await short.json())["error"]
