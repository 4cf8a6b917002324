"""Settings: one declaration each (ml_dash/settings.py, ml_dash/server/config.py), one precedence rule, and
docs/settings.md generated from the declarations."""
from __future__ import annotations

import pathlib
import re

import pytest

import ml_dash.server.config as server_config  # registers the server's settings
from ml_dash import settings
from ml_dash.server.config import ServerConfig
from ml_dash.settings import REGISTRY, Setting, markdown_table

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "settings.md"


@pytest.fixture
def declare(monkeypatch):
    """Declare a throwaway setting (kept out of the registry the docs are made from) with a clean environment."""
    for var in ("ML_DASH_KNOB", "ML_LOGGER_KNOB"):
        monkeypatch.delenv(var, raising=False)
    before = dict(REGISTRY)
    yield lambda *args, **kwargs: Setting("KNOB", *args, **kwargs)
    REGISTRY.clear()
    REGISTRY.update(before)


def test_an_argument_wins_even_when_falsy(declare, monkeypatch):
    knob = declare(int, 5, "a knob")
    monkeypatch.setenv("ML_DASH_KNOB", "7")
    assert knob.get(0) == 0 and knob.get(3) == 3


def test_ml_dash_beats_ml_logger_which_beats_the_default(declare, monkeypatch):
    knob = declare(int, 5, "a knob")
    assert knob.get() == 5
    monkeypatch.setenv("ML_LOGGER_KNOB", "6")
    assert knob.get() == 6
    monkeypatch.setenv("ML_DASH_KNOB", "7")
    assert knob.get() == 7
    monkeypatch.setenv("ML_DASH_KNOB", "")  # empty counts as unset
    assert knob.get() == 6


def test_a_setting_without_the_legacy_spelling_ignores_it(declare, monkeypatch):
    knob = declare(int, 5, "a knob", legacy=False)
    monkeypatch.setenv("ML_LOGGER_KNOB", "6")
    assert knob.get() == 5 and knob.variables == ("ML_DASH_KNOB",)


def test_a_bad_variable_is_a_value_error_naming_it(declare, monkeypatch):
    knob = declare(int, 5, "a knob")
    monkeypatch.setenv("ML_LOGGER_KNOB", "lots")
    with pytest.raises(ValueError) as info:
        knob.get()
    assert str(info.value) == ("environment variable ML_LOGGER_KNOB='lots' is invalid: invalid literal for int() "
                               "with base 10: 'lots'")


def test_bools_and_choices_parse_as_before(declare, monkeypatch):
    flag = declare(bool, False, "a flag")
    for raw, value in (("1", True), ("On", True), ("YES", True), ("true", True), ("0", False), ("off", False)):
        monkeypatch.setenv("ML_DASH_KNOB", raw)
        assert flag.get() is value
    monkeypatch.setenv("ML_DASH_KNOB", "maybe")
    with pytest.raises(ValueError, match="KNOB='maybe' is invalid: must be one of 1, 0, true, false, yes, no, on, off"):
        flag.get()
    monkeypatch.setenv("ML_DASH_ON_FULL", "spill")
    with pytest.raises(ValueError, match="ML_DASH_ON_FULL='spill' is invalid: on_full must be 'block' or 'drop'"):
        settings.ON_FULL.get()


def test_a_name_is_declared_once(declare):
    declare(int, 5, "a knob")
    with pytest.raises(ValueError, match="KNOB is declared twice"):
        Setting("KNOB", int, 6, "again")


def test_system_interval_must_be_positive(monkeypatch):
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "0")
    with pytest.raises(ValueError, match="must be a number of seconds greater than 0"):
        settings.SYSTEM_INTERVAL.get()


def test_server_settings_reach_server_config(monkeypatch):
    for var in ("ML_DASH_SQLITE_READERS", "ML_DASH_SERIES_CACHE_MB", "ML_DASH_TOKENS", "ML_LOGGER_TOKENS"):
        monkeypatch.delenv(var, raising=False)
    config = ServerConfig.resolve()
    assert (config.sqlite_readers, config.series_cache_mb, config.tokens) == (3, 256.0, {})
    monkeypatch.setenv("ML_DASH_SQLITE_READERS", "5")
    monkeypatch.setenv("ML_DASH_SERIES_CACHE_MB", " ")  # blank: the default, as before
    monkeypatch.setenv("ML_LOGGER_TOKENS", "ignored")  # never had the legacy spelling
    config = ServerConfig.resolve()
    assert (config.sqlite_readers, config.series_cache_mb, config.tokens) == (5, 256.0, {})
    assert ServerConfig.resolve(sqlite_readers=2, series_cache_mb=0).sqlite_readers == 2
    for raw in ("0", "many"):
        monkeypatch.setenv("ML_DASH_SQLITE_READERS", raw)
        with pytest.raises(ValueError, match="ML_DASH_SQLITE_READERS.*positive number of reader threads"):
            ServerConfig.resolve()
    with pytest.raises(server_config.ConfigError, match="ML_DASH_SQLITE_READERS"):
        ServerConfig.resolve(sqlite_readers=0)


def _named(text: str, prefix: str) -> set[str]:
    return {name for name in re.findall(prefix + r"[A-Z][A-Z0-9_]*[A-Z0-9]", text)
            if not name.startswith("ML_DASH_TEST_")}  # the test suite's own switches (PostgreSQL, Chromium)


def test_every_variable_the_package_and_docs_name_is_declared():
    """A variable named in the code, README or docs but declared nowhere is read nowhere (or read behind the
    registry's back): either way, a bug."""
    files = [*ROOT.joinpath("ml_dash").rglob("*.py"), ROOT / "README.md", *ROOT.joinpath("docs").glob("*.md")]
    text = "\n".join(f.read_text(encoding="utf-8") for f in files)
    declared = {s.env_var for s in REGISTRY.values()}
    assert _named(text, "ML_DASH_") - declared == set()
    legacy = {s.variables[1] for s in REGISTRY.values() if len(s.variables) > 1}
    assert _named(text, "ML_LOGGER_") - legacy == set()


def test_only_the_settings_module_reads_the_variables():
    pattern = re.compile(r"""(environ\.get\(|getenv\(|environ\[)\s*f?["']ML_""")
    readers = [str(f.relative_to(ROOT)) for f in ROOT.joinpath("ml_dash").rglob("*.py")
               if pattern.search(f.read_text(encoding="utf-8"))]
    assert readers == []


def test_docs_settings_page_is_the_registry():
    """docs/settings.md's tables are ``markdown_table("client")`` then ``markdown_table("server")``."""
    expected = markdown_table("client") + markdown_table("server")
    found = "".join(line + "\n" for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("|"))
    assert found == expected, ("docs/settings.md is out of date; paste these tables under its Client and Server "
                               "headings:\n\n" + markdown_table("client") + "\n" + markdown_table("server"))


def test_the_registry_has_every_setting_once_with_a_doc():
    assert {s.scope for s in REGISTRY.values()} == {"client", "server"}
    for s in REGISTRY.values():
        assert s.doc and "\n" not in s.doc and s.name == s.name.upper(), s
