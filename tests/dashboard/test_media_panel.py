"""The experiment page's Media section in headless Chromium: images with a step slider, strip and full-size view,
audio and video players, a paged table, and the histogram heatmap (docs/media.md)."""
from __future__ import annotations

import os

import numpy as np
import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")

from ml_dash.server.testing import running_server  # noqa: E402

HIST_STEPS = 300


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    from ml_dash import Audio, Experiment, Histogram, Image, Table, Video

    root = tmp_path_factory.mktemp("media-panel")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    try:
        with running_server(root / "server") as base_url:
            exp = Experiment(namespace="dora", workspace="media", prefix="run", remote=base_url,
                             local_root=str(root / "logs"), system_metrics=False, capture_environment=False)
            y, x = np.mgrid[0:64, 0:64]
            rng = np.random.default_rng(0)
            with exp.run():
                for step in range(0, 100, 10):
                    shade = np.stack([x * 4, y * 4, np.full_like(x, step * 2)], -1).astype(np.uint8)
                    exp.media.log(step=step, samples=[Image(shade, caption=f"gradient at {step}"),
                                                      Image(255 - shade, caption=f"inverse at {step}")])
                for step in range(HIST_STEPS):
                    exp.media.log(step=step, weights=Histogram(rng.normal(step / 100, 1 + step / 300, 2000)))
                t = np.linspace(0, 1, 8000, dtype=np.float32)
                exp.media.log(step=0, tone=Audio(0.3 * np.sin(2 * np.pi * 440 * t), 8000),
                              clip=Video(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), fps=3, format="apng"),
                              preds=Table([[i, f"label {i}", Image(shade_small(i))] for i in range(25)],
                                          ["id", "label", "image"]))
            yield base_url, exp
    finally:
        os.environ.update(saved)


def shade_small(i):
    return np.full((8, 8, 3), i * 10, np.uint8)


def test_media_section_shows_slider_strip_captions_players_table_and_heatmap(logged, page, tmp_path):
    base_url, exp = logged
    page.goto(f"{base_url}/#/exp/{exp.experiment_id}")
    page.wait_for_selector("#media .media-key[data-key='samples'] .media-thumb[src^='blob:']")
    keys = page.eval_on_selector_all("#media .media-key", "ks => ks.map(k => k.dataset.key)")
    assert keys == ["clip", "preds", "samples", "tone", "weights"]
    samples = "#media .media-key[data-key='samples']"
    assert page.inner_text(f"{samples} .media-step") == "step 90"  # the last step first
    assert page.eval_on_selector_all(f"{samples} .media-caption", "cs => cs.map(c => c.textContent)") == \
        ["gradient at 90", "inverse at 90"]
    assert page.eval_on_selector_all(f"{samples} .media-strip-step", "bs => bs.map(b => b.textContent)") == \
        ["0", "10", "30", "40", "50", "60", "80", "90"]
    page.eval_on_selector(f"{samples} .media-slider",
                          "s => { s.value = '2'; s.dispatchEvent(new Event('input')); }")
    page.wait_for_function(f"""() => [...document.querySelectorAll("{samples} .media-caption")]
        .map(c => c.textContent).join() === 'gradient at 20,inverse at 20'""")
    page.click(f"{samples} .media-strip-step:has-text('50')")
    page.wait_for_function(f"""() => document.querySelector("{samples} .media-step").textContent === 'step 50'""")
    page.click(f"{samples} .media-thumb >> nth=0")
    page.wait_for_selector(".media-overlay img.media-full[src^='blob:']")
    assert page.inner_text(".media-overlay .media-caption") == "gradient at 50"
    page.screenshot(path=str(tmp_path / "full.png"))
    page.click(".media-overlay")
    page.wait_for_selector("#media audio.media-audio[src^='blob:']")
    page.wait_for_selector("#media .media-key[data-key='clip'] .media-thumb[src^='blob:']")
    page.wait_for_selector("#media .media-table")
    assert page.eval_on_selector_all("#media .media-table tr", "rs => rs.length") == 21  # header + 20 rows
    page.click("#media .media-pager button >> nth=1")
    page.wait_for_function("() => document.querySelectorAll('#media .media-table tr').length === 6")
    heat = page.wait_for_selector("#media .media-heatmap[data-columns]")
    assert heat.get_attribute("data-steps") == str(HIST_STEPS) and heat.get_attribute("data-columns") == str(HIST_STEPS)
    lit = page.eval_on_selector("#media .media-heatmap", """c => { const d = c.getContext('2d')
        .getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200) n++;
        return n; }""")
    assert lit > 0
    box = heat.bounding_box()  # drag across the first quarter: the range narrows, every step in it is a column
    page.mouse.move(box["x"] + 2, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 4, box["y"] + 50)
    page.mouse.up()
    page.wait_for_function("() => Number(document.querySelector('#media .media-heatmap').dataset.steps) < 300")
    narrowed = int(page.get_attribute("#media .media-heatmap", "data-steps"))
    assert 50 < narrowed < 100 and page.get_attribute("#media .media-heatmap", "data-columns") == str(narrowed)
    page.locator("#media").screenshot(path=str(tmp_path / "media.png"))


def test_audio_and_video_load_under_the_servers_content_security_policy(logged, strict_page):
    """The players' blob: sources are allowed (media-src): a CSP violation fails ``strict_page``."""
    base_url, exp = logged
    strict_page.goto(f"{base_url}/#/exp/{exp.experiment_id}")
    strict_page.wait_for_selector("#media audio.media-audio[src^='blob:']")
    clip_seconds = strict_page.eval_on_selector("#media audio.media-audio", """a => new Promise((ok, fail) => {
        if (a.readyState >= 1) ok(a.duration);
        a.addEventListener('loadedmetadata', () => ok(a.duration)); a.addEventListener('error', () => fail('blocked')); })""")
    assert abs(clip_seconds - 1.0) < 0.01  # the clip's length as the player reads it: 8000 samples at 8 kHz
