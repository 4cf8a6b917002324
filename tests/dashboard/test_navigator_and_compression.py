"""The navigator on a server of more than 10,000 experiments (it reads the tree a level at a time, with the server's
counts, and searches through the server), and compressed answers decoded by the page, in headless Chromium."""
from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from ml_dash.server.storage.sqlite.storage import SQLiteStorage  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402

BIG = 10_050  # past the old navigator's silent 10,000
NEEDLE = "needle-7f3"


async def _seed(data_dir: Path) -> None:
    """Through the storage, as the benchmarks do: "big/many" with BIG experiments in d0..d9 (one, NEEDLE, deeper),
    "small/few" with three runs of a 300-step loss."""
    storage = SQLiteStorage(str(data_dir / "ml-dash.sqlite3"))
    await storage.open()
    try:
        for i in range(BIG - 1):
            await storage.create_experiment("big", "many", f"d{i % 10}", f"run-{i:05d}", None, "h")
        await storage.create_experiment("big", "many", "d3/deep", NEEDLE, "the one to find", "h")
        for i in range(3):
            experiment_id, _ = await storage.create_experiment("small", "few", "", f"run-{i}", None, "h")
            await storage.apply_batch(experiment_id, None, "metrics", "m", 0, 1, [
                {"timestamp": 1.7e9 + s, "step": s, "metrics": {"loss": math.exp(-s / 100) + i}} for s in range(300)])
    finally:
        await storage.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("navigator-server")
    asyncio.run(_seed(data_dir))
    with running_server(data_dir) as base_url:
        yield base_url


def _graphql(page) -> list:
    sent = []
    page.on("requestfinished", lambda r: sent.append(r) if r.url.endswith("/graphql") else None)
    return sent


def _node(page, key: str):
    return page.locator(f"#nav-tree li[data-key='{key}']")


def test_navigator_counts_and_search_past_ten_thousand(server, page):
    sent = _graphql(page)
    page.goto(f"{server}/#/")
    _node(page, "ns:big").wait_for()
    assert _node(page, "ns:big").get_attribute("data-count") == str(BIG)
    assert _node(page, "ns:small").get_attribute("data-count") == "3"
    page.wait_for_selector("#main td a[href='#/ws/big/many']")  # the home view, counted by the server too
    assert page.locator("#main tr:has(a[href='#/ws/big/many']) td.num").first.inner_text() == str(BIG)

    page.click("#nav-tree li[data-key='ns:big'] > .node")
    _node(page, "ws:big/many").wait_for()
    assert _node(page, "ws:big/many").get_attribute("data-count") == str(BIG)
    page.click("#nav-tree li[data-key='ws:big/many'] > .node")
    _node(page, "ws:big/many/d9").wait_for()
    counts = {f"d{d}": _node(page, f"ws:big/many/d{d}").get_attribute("data-count") for d in range(10)}
    assert counts == {f"d{d}": str(len(range(d, BIG - 1, 10)) + (d == 3)) for d in range(10)}

    page.click("#nav-tree li[data-key='ws:big/many/d3'] > .node")  # its deep/ folder and a first page of runs
    _node(page, "ws:big/many/d3/deep").wait_for()
    d3 = "#nav-tree li[data-key='ws:big/many/d3'] > ul > li > a[data-experiment]"
    page.wait_for_selector(d3)
    assert page.locator(d3).count() == 100
    page.click("#nav-tree li[data-key='ws:big/many/d3'] > ul > li > button.more")
    page.wait_for_function(f"document.querySelectorAll(\"{d3}\").length === 200")

    page.fill("#nav-search", NEEDLE.upper())  # the server searches, ignoring case
    page.wait_for_function("document.querySelectorAll('#nav-tree a[data-experiment]').length === 1")
    link = page.locator("#nav-tree a[data-experiment]")
    assert link.inner_text().strip() == NEEDLE
    link.click()
    page.wait_for_selector(f"#exp-header h1:has-text('{NEEDLE}')")
    # Never the whole list: every request the navigator made was one level, one page or one search.
    assert sent and not [r for r in sent if "experiments(" in (r.post_data or "")]


def test_compressed_answers_are_decoded_by_the_page(server, page):
    """The overlay's seriesBatch answer comes compressed (Content-Encoding), in base64 arrays, and is drawn."""
    answers = []
    page.on("response", lambda r: answers.append(r) if "seriesBatch" in (r.request.post_data or "") else None)
    page.goto(f"{server}/#/ws/small/few?view=charts")
    page.wait_for_selector(".overlay-chart[data-metric='loss'][data-state=ready]")
    assert answers
    answer = answers[-1]
    assert answer.headers.get("content-encoding") in ("zstd", "gzip"), answer.headers
    assert '"f4:' in answer.text()  # what the page decoded (lib/typed_arrays.js)
    assert float(page.locator(".overlay-chart[data-metric='loss']").get_attribute("data-max")) == pytest.approx(
        3.0, rel=1e-6)
    assert "3 runs" in page.locator(".chart-card .count").first.inner_text()
