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

from dashboard_seed import Server, seed_big_series, seed_demo  # noqa: E402
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
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})

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

            page.goto(f"{base_url}/#/exp/{big.id}")
            charts_ready(page, 1)
            page.evaluate("document.querySelector('#metrics').scrollIntoView()")
            shot("million-points")
            browser.close()


if __name__ == "__main__":
    main()
