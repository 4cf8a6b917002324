"""The dashboard's JavaScript unit tests (tests/dashboard/js/*.test.mjs, run by Node's own test runner), one pytest
test per file, and the rules that keep ml_dash/server/static/js/lib/ testable: pure modules, no DOM, storage or
network."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "ml_dash" / "server" / "static" / "js"
TESTS = sorted((Path(__file__).parent / "js").glob("*.test.mjs"))
NODE = shutil.which("node") or shutil.which("nodejs")


def test_there_are_js_tests_for_every_lib_module():
    assert TESTS
    tested = {path.name.removesuffix(".test.mjs") for path in TESTS}
    assert {path.stem for path in (JS / "lib").glob("*.js")} <= tested


@pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs): the dashboard's JS unit tests need it")
@pytest.mark.parametrize("path", TESTS, ids=[path.name for path in TESTS])
def test_js(path):
    result = subprocess.run([NODE, "--test", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-12000:]
    passed = re.search(r"^# pass (\d+)$", report, re.M)
    assert passed and int(passed.group(1)) > 0 and re.search(r"^# fail 0$", report, re.M), report[-12000:]


# What a pure module must not name: the page, the browser's storage, the network, or a module outside lib/.
IMPURE = re.compile(r"\b(document|window|localStorage|sessionStorage|fetch|XMLHttpRequest|navigator|location|history)\b"
                    r"|from \"\.\./")


@pytest.mark.parametrize("path", sorted((JS / "lib").glob("*.js")), ids=lambda path: path.name)
def test_lib_modules_touch_no_dom_storage_or_network(path):
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))
    assert not IMPURE.findall(code), f"{path.name} reaches outside pure code: {IMPURE.findall(code)}"


def test_js_modules_stay_small():
    sizes = {path.relative_to(JS).as_posix(): len(path.read_text().splitlines()) for path in JS.rglob("*.js")}
    assert {name: n for name, n in sizes.items() if n > 500} == {}
