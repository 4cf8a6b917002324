"""The runs table of a wide run in headless Chromium against a real server: a sensible default set of columns, the
column chooser (show, hide, pin, reorder, remembered per workspace), tags and notes as columns, sub-second
durations, and the filter box speaking the server's filter language (and a filter the server refuses)."""
from __future__ import annotations

import os

import pytest

if not os.path.exists("/usr/bin/chromium"):
    pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from dashboard_seed import Server  # noqa: E402
from ml_dash.server.testing import running_server  # noqa: E402

PARAMS = 170  # a transformers run's TrainingArguments flatten to about this many


def wide_params(i: int) -> dict:
    params = {f"args.opt_{k:03d}": k for k in range(PARAMS)}
    params.update({"learning_rate": [1e-4, 3e-4, 1e-3][i], "optimizer": ["adamw", "adamw", "sgd"][i]})
    return params


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("columns-server")) as base_url:
        client = Server(base_url)
        for i, (tags, notes) in enumerate([(["baseline"], "first try\nsecond line"), (["baseline", "long"], ""),
                                           ([], "sgd for comparison")]):
            exp = client.experiment("alice", "wide", f"bert-{i}", started_at=1_700_000_000 + i * 100)
            exp.params(**wide_params(i))
            exp.metrics([(s, {"train/loss": 2.0 - s / 10 - i / 10, "eval/loss": 2.5 - s / 10}) for s in range(2)],
                        seconds_per_step=0.2)  # the run lasts 0.4 s
            exp.finish()
            client.request("PATCH", f"/api/v1/experiments/{exp.id}", {"tags": tags, "notes": notes})
        other = client.experiment("alice", "other", "solo")
        other.params(lr=0.1)
        other.finish()
        yield base_url


def header(page) -> list[str]:
    return page.eval_on_selector_all("#runs-table th[data-column]", "hs => hs.map(h => h.dataset.column)")


def prefixes(page) -> list[str]:
    return page.eval_on_selector_all("#runs-table tbody tr", "rs => rs.map(r => r.dataset.prefix)")


def test_a_wide_run_defaults_to_a_few_columns_and_the_chooser_shows_pins_reorders_and_remembers(server, page):
    page.goto(f"{server}/#/ws/alice/wide")
    page.wait_for_selector("#runs-table tbody tr[data-experiment]")
    assert header(page) == ["status", "prefix", "started", "duration", "tags", "param:learning_rate", "param:optimizer",
                            "metric:eval/loss", "metric:train/loss"]
    assert page.eval_on_selector("#runs-table", "t => t.scrollWidth") < 1400
    # Sub-second durations are not "0s"; tags are chips.
    assert page.inner_text('#runs-table tr[data-prefix="bert-0"] td.num') == "0.4 s"
    assert page.eval_on_selector_all('#runs-table tr[data-prefix="bert-1"] td.tags .tag', "ts => ts.map(t => t.textContent)") \
        == ["baseline", "long"]

    page.click("#columns-button")
    page.wait_for_selector("#column-chooser:not([hidden]) #column-list li")
    assert page.locator("#column-list li").count() == 7 + PARAMS + 2 + 2  # built-ins, params, lr + optimizer, metrics
    page.fill("#column-search", "notes")
    page.check('#column-list li[data-column="notes"] .column-shown')
    page.wait_for_selector('#runs-table th[data-column="notes"]')
    assert page.inner_text('#runs-table tr[data-prefix="bert-0"] td.notes') == "first try"
    page.fill("#column-search", "opt_007")
    page.check('#column-list li[data-column="param:args.opt_007"] .column-shown')
    page.fill("#column-search", "started")
    page.uncheck('#column-list li[data-column="started"] .column-shown')
    page.fill("#column-search", "train/loss")
    page.click('#column-list li[data-column="metric:train/loss"] .column-pin')
    page.fill("#column-search", "")
    page.click('#column-list li[data-column="duration"] .column-up')  # before the prefix
    expected = ["metric:train/loss", "status", "duration", "prefix", "tags", "notes", "param:args.opt_007",
                "param:learning_rate", "param:optimizer", "metric:eval/loss"]
    page.wait_for_function(f"[...document.querySelectorAll('#runs-table th[data-column]')].map(h => h.dataset.column).join() === {','.join(expected)!r}")
    assert page.eval_on_selector('#runs-table th[data-column="metric:train/loss"]', "h => h.classList.contains('pinned')")

    page.reload()  # remembered in this browser, for this workspace
    page.wait_for_selector("#runs-table tbody tr[data-experiment]")
    assert header(page) == expected
    page.goto(f"{server}/#/ws/alice/other")  # another workspace keeps its defaults
    page.wait_for_selector('#runs-table tr[data-prefix="solo"]')
    assert "started" in header(page) and "notes" not in header(page)
    page.goto(f"{server}/#/ws/alice/wide")
    page.wait_for_selector("#runs-table tbody tr[data-experiment]")
    page.click("#columns-button")
    page.click("#columns-reset")
    page.wait_for_function("!document.querySelector('#runs-table th[data-column=notes]')")


@pytest.mark.parametrize("text, expected", [
    ("tags contains 'baseline'", ["bert-0", "bert-1"]),
    ("tags contains 'baseline' and not_a_key = 1 or optimizer = sgd", ["bert-2"]),
    ("(learning_rate < 0.0002 or optimizer = 'sgd') and prefix like 'bert-%'", ["bert-0", "bert-2"]),
    ("params.learning_rate >= 3e-4, metrics.train/loss < 1.85", ["bert-1", "bert-2"]),
    ("learning_rate > 0.0002 && train/loss < 1.95", ["bert-1", "bert-2"]),
    ("notes like '%try%'", ["bert-0"]),
    ("prefix ~ rt-1", ["bert-1"]),
])
def test_the_filter_box_speaks_the_servers_language_and_keeps_its_short_forms(server, page, text, expected):
    page.goto(f"{server}/#/ws/alice/wide")
    page.wait_for_selector("#runs-table tbody tr[data-experiment]")
    page.fill("#runs-filter", text)
    page.wait_for_function(f"document.querySelector('#runs-scroll').dataset.filter === {text!r}")
    assert sorted(prefixes(page)) == expected


def test_a_filter_the_server_refuses_clears_the_rows_and_shows_its_reason(server, page):
    page.goto(f"{server}/#/ws/alice/wide")
    page.wait_for_selector("#runs-table tbody tr[data-experiment]")
    text = "train/loss < 'abc'"  # reads, but a metric compares with numbers only
    page.fill("#runs-filter", text)
    page.wait_for_function(f"document.querySelector('#runs-scroll').dataset.filter === {text!r}")
    assert page.locator("#runs-table tbody tr").count() == 0
    assert "compares with numbers only" in page.inner_text("#runs-filter-error")
    page.fill("#runs-filter", "optimizer = sgd")
    page.wait_for_function("document.querySelector('#runs-scroll').dataset.filter === 'optimizer = sgd'")
    assert prefixes(page) == ["bert-2"] and page.inner_text("#runs-filter-error") == ""
