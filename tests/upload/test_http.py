import pytest

from ml_dash.client.upload.http import use_gzip


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8000", False), ("http://localhost:8000", False), ("http://[::1]:8000", False),
    ("http://10.0.0.5:8000", True), ("https://dash.example.org", True),
])
def test_gzip_auto_skips_loopback_servers_only(url, expected, monkeypatch):
    """By default bodies are gzipped except to a loopback server, where it would only cost CPU."""
    monkeypatch.delenv("ML_DASH_UPLOAD_GZIP", raising=False)
    monkeypatch.delenv("ML_LOGGER_UPLOAD_GZIP", raising=False)
    assert use_gzip(url) is expected


def test_gzip_setting_overrides_and_rejects_unknown_values(monkeypatch):
    """ML_DASH_UPLOAD_GZIP=on/off wins over the host rule; a bad value is an error naming the setting."""
    monkeypatch.setenv("ML_DASH_UPLOAD_GZIP", "on")
    assert use_gzip("http://127.0.0.1:1") is True
    monkeypatch.setenv("ML_DASH_UPLOAD_GZIP", "off")
    assert use_gzip("https://dash.example.org") is False
    monkeypatch.setenv("ML_DASH_UPLOAD_GZIP", "sometimes")
    with pytest.raises(ValueError, match="UPLOAD_GZIP"):
        use_gzip("https://dash.example.org")
