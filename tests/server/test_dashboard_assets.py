from __future__ import annotations

import gzip

from ml_dash.server import _dashboard


async def test_assets_are_prepared_at_startup_without_a_request(make_client, monkeypatch):
    """Start-up reads and gzips plotly.min.js and the app's files before any page asks for them."""
    monkeypatch.setattr(_dashboard, "_assets", {})
    client = await make_client()
    await client.app[_dashboard.ASSETS_PREPARED_KEY]
    plotly_path = _dashboard.plotly_js_path()
    assert plotly_path is not None and plotly_path in _dashboard._assets
    assert _dashboard.STATIC_DIR / "app.js" in _dashboard._assets
    # The first request is served from what start-up prepared: no read or compression on its path.
    monkeypatch.setattr(_dashboard, "_read_asset", lambda *a: (_ for _ in ()).throw(AssertionError("read again")))
    answer = await client.get(_dashboard.PLOTLY_URL, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert answer.status == 200 and answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await answer.read()) == plotly_path.read_bytes()
