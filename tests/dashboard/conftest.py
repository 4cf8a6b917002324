"""A real server subprocess on loopback, seeded once per module, and one headless Debian Chromium for the suite."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open_page(browser, **options):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The server's Content-Security-Policy (ml_dash/server/http/security.py) must allow all the dashboard does.
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.set_default_timeout(20_000)
    return context, page, errors


@pytest.fixture
def page(browser):
    """A page for the tests, which wait with ``wait_for_function`` (a string Playwright evaluates: the server's CSP
    forbids that, so this context bypasses it; ``strict_page`` keeps it, for the CSP's own test)."""
    context, page, errors = _open_page(browser, bypass_csp=True)
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def strict_page(browser):
    """A page under the server's Content-Security-Policy; any violation fails the test."""
    context, page, errors = _open_page(browser)
    yield page
    context.close()
    assert not errors, f"uncaught errors or CSP violations in the page: {errors}"
