from __future__ import annotations

import gzip

from ml_dash.server.http import dashboard as _dashboard


async def test_assets_are_prepared_at_startup_without_a_request(make_client, monkeypatch):
    """Start-up reads and gzips plotly.min.js and the app's files before any page asks for them."""
    monkeypatch.setattr(_dashboard, "_assets", {})
    client = await make_client()
    await client.app[_dashboard.ASSETS_PREPARED_KEY]
    plotly_path = _dashboard.plotly_js_path(client.app[_dashboard.CONFIG_KEY].chart_js)
    assert plotly_path is not None and plotly_path in _dashboard._assets
    assert _dashboard.STATIC_DIR / "js" / "main.js" in _dashboard._assets
    # The first request is served from what start-up prepared: no read or compression on its path.
    monkeypatch.setattr(_dashboard, "_read_asset", lambda *a: (_ for _ in ()).throw(AssertionError("read again")))
    answer = await client.get(_dashboard.PLOTLY_URL, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert answer.status == 200 and answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await answer.read()) == plotly_path.read_bytes()


def test_chart_library_choice(tmp_path, monkeypatch):
    """--chart-js wins; else the fetched basic bundle; else the plotly package's full plotly.min.js."""
    own = tmp_path / "own.js"
    own.write_text("window.Plotly = {};")
    assert _dashboard.plotly_js_path(str(own)) == own
    assert _dashboard.plotly_js_path(str(tmp_path / "missing.js")) is None
    basic = tmp_path / "plotly-basic.min.js"
    monkeypatch.setattr(_dashboard, "BASIC_BUNDLE", basic)
    assert _dashboard.plotly_js_path() == _dashboard.full_plotly_js_path()
    assert _dashboard.full_plotly_js_path().name == "plotly.min.js"
    basic.write_text("/* basic */")
    assert _dashboard.plotly_js_path() == basic


def test_chart_js_option_must_name_a_file(tmp_path):
    """A --chart-js path that is not a file is refused at start-up, naming the option."""
    import pytest

    from ml_dash.server.config import ConfigError, ServerConfig

    with pytest.raises(ConfigError, match="--chart-js"):
        ServerConfig.resolve(data_dir=str(tmp_path), chart_js=str(tmp_path / "nope.js"))
