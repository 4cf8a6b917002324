"""Regenerate docs/screenshots/*.png: a seeded server on loopback photographed by headless Debian Chromium.

    .venv/bin/python docs/make_screenshots.py

Needs /usr/bin/chromium (apt-get install -y chromium), playwright (Python) and plotly. Uses the same seeding helper
and browser flags as tests/dashboard.
"""
from __future__ import annotations

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests", "dashboard")]

from dashboard_seed import Server, seed_big_series, seed_demo, seed_sweep  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from ml_dash.server.testing import running_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUT = os.path.join(HERE, "screenshots")


def charts_ready(page, count: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('.chart[data-state=ready]').length === {count}")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir, running_server(data_dir) as base_url:
        server = Server(base_url)
        seeded = seed_demo(server)
        big = seed_big_series(server, 1_000_000, 654_321, 50.0)
        seed_sweep(server, steps=200, spike=("sweep-lr0.03-adam-s1", 120, 6.0))
        notes = server.experiment("alice", "notes", "markdown-readme", readme=(
            "# ResNet-50 on CIFAR-10\nA sweep over the learning rate; see the table below.\n\n"
            "## Setup\n- optimizer: `sgd` with momentum 0.9\n- **augmentation**: random crop + flip\n\n"
            "| lr | val acc |\n|---:|---:|\n| 0.01 | 0.91 |\n| 0.1 | 0.88 |\n\n"
            "> Raw HTML is shown as text: <script>alert(1)</script>\n\n```python\nexp.metrics.log(step=i, loss=loss)\n```"))
        notes.upload("model.pt", bytes(range(256)) * 16)
        notes.upload("notes.txt", b"lr=0.01 looks best\n")
        notes.finish()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)  # waits evaluate strings

            def shot(name: str, full_page: bool = False) -> None:
                path = os.path.join(OUT, f"{name}.png")
                page.screenshot(path=path, full_page=full_page)
                print("wrote", os.path.relpath(path, REPO))

            page.goto(f"{base_url}/#/ws/alice/vision")
            page.wait_for_selector("#runs-table tbody tr")
            shot("runs-table")

            page.fill("#runs-filter", "model.layers > 20")
            page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 3")
            page.click('#runs-table th[data-column="metric:val.acc"]')
            page.check('#runs-table tr[data-prefix="resnet-lr0.1"] .select-row')
            page.check('#runs-table tr[data-prefix="resnet-lr0.01"] .select-row')
            # Scroll the table sideways so the last-metric columns (and the sort arrow on val.acc) are in view.
            page.evaluate("document.querySelector('.table-wrap').scrollLeft = 420")
            shot("runs-table-filtered")

            page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.01'].id}")
            charts_ready(page, 5)
            shot("experiment")
            page.evaluate("document.querySelector('#metrics').scrollIntoView()")
            shot("experiment-charts")
            page.click('#files tr[data-path="config.json"] button')
            page.wait_for_selector("#file-preview pre.json")
            page.evaluate("document.querySelector('#logs').scrollIntoView()")
            shot("experiment-logs-files")

            ids = ",".join(seeded[p].id for p in ("resnet-lr0.001", "resnet-lr0.01", "resnet-lr0.1"))
            page.goto(f"{base_url}/#/compare?ids={ids}&metric=train.loss")
            page.wait_for_selector("#compare-chart[data-state=ready]")
            shot("compare")

            page.goto(f"{base_url}/#/exp/{seeded['resnet-live'].id}")
            charts_ready(page, 5)
            live = seeded["resnet-live"]
            live.metrics([(s, {"train.loss": 0.6 - s / 2000, "train.acc": 0.7 + s / 5000}) for s in range(150, 200)])
            page.wait_for_function("Math.max(...document.querySelector('.chart[data-metric=\"train.loss\"]').data[0].x) === 199")
            page.evaluate("document.querySelector('#metrics').scrollIntoView()")
            shot("live")

            page.goto(f"{base_url}/#/ws/alice/sweep?view=charts")
            page.wait_for_function("document.querySelectorAll('.overlay-chart[data-state=ready]').length === 2")
            page.select_option("#color-by", "lr")
            page.fill("#smoothing", "0.6")
            loss = '.overlay-chart[data-metric="loss"]'
            box = page.locator(f"{loss} .overlay-top").bounding_box()
            for dy in range(12, 200, 3):  # down the column of step 120 until a line is under the pointer
                page.mouse.move(box["x"] + 56 + (box["width"] - 68) * 120 / 199, box["y"] + dy)
                if page.get_attribute(loss, "data-hovered"):
                    break
            shot("workspace-charts")
            page.mouse.move(0, 0)
            page.select_option("#color-by", "optimizer")
            page.check("#group-by")
            page.wait_for_function(f"document.querySelector('{loss}').dataset.lines === '2'")
            shot("workspace-grouped")

            page.goto(f"{base_url}/#/ws/alice/sweep?view=parallel")
            page.wait_for_selector("#parallel[data-state=ready]")
            target = page.locator('#parallel .pc-axis[data-axis="lr"] .pc-target').bounding_box()
            x = target["x"] + target["width"] / 2
            page.mouse.move(x, target["y"] + target["height"] * 0.3)
            page.mouse.down()
            page.mouse.move(x, target["y"] + target["height"] * 0.75, steps=4)
            page.mouse.up()
            page.wait_for_function("document.querySelector('#parallel').dataset.brushed !== ''")
            shot("parallel-coordinates")

            page.goto(f"{base_url}/#/exp/{seeded['resnet-lr0.1'].id}")
            charts_ready(page, 5)
            page.fill("#smoothing", "0.8")
            page.check("#log-y")
            page.select_option("#x-axis", "relative")
            page.wait_for_function("document.querySelector('.chart[data-metric=\"train.loss\"]')._fullLayout.xaxis.title.text.includes('since start')")
            page.evaluate("document.querySelector('#metrics').scrollIntoView()")
            shot("experiment-smoothing")

            page.goto(f"{base_url}/#/exp/{notes.id}")
            page.wait_for_selector("#readme .readme h1")
            shot("readme-markdown")

            page.goto(f"{base_url}/#/exp/{big.id}")
            charts_ready(page, 1)
            page.evaluate("document.querySelector('#metrics').scrollIntoView()")
            shot("million-points")
            browser.close()


if __name__ == "__main__":
    main()
