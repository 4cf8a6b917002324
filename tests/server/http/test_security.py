"""Browser-facing protections (ml_dash/server/http/security.py): Host check, GraphQL content type, security headers,
downloads as attachments."""
from __future__ import annotations

import pytest

from ml_dash.server import ServerConfig
from ml_dash.server.http.security import allowed_host_names, host_name

from ..conftest import new_experiment

QUERY = {"query": "{ namespaces }"}


async def test_graphql_refuses_a_cross_site_text_plain_post(client):
    """A page elsewhere can make the browser POST text/plain without a preflight: it must not run."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = await client.post("/graphql", data=b'{"query": "{ namespaces }"}',
                                   headers={"Content-Type": content_type})
        assert answer.status == 415, content_type
        assert "application/json" in (await answer.json())["error"]
    answer = await client.post("/graphql", data=b'{"query": "{ namespaces }"}')  # no Content-Type at all
    assert answer.status == 415
    assert (await client.post("/graphql", json=QUERY)).status == 200
    answer = await client.post("/graphql", data=b"{ namespaces }", headers={"Content-Type": "application/graphql"})
    assert answer.status == 200 and (await answer.json())["data"] == {"namespaces": []}
    # GET only describes the endpoint, whatever it is given.
    answer = await client.get("/graphql", params={"query": "{ namespaces }"})
    assert answer.status == 200 and "POST" in await answer.text()


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000", "LOCALHOST", "127.0.0.2"])
async def test_loopback_host_names_are_answered(client, host):
    assert (await client.get("/health", headers={"Host": host})).status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.",
                                  "0.0.0.0:8000"])
async def test_other_host_names_are_refused_on_a_loopback_bind(client, host):
    """DNS rebinding: a hostile name re-pointed at 127.0.0.1 reaches the socket, but not the data."""
    for path in ("/health", "/", "/api/v1/experiments"):
        answer = await client.get(path, headers={"Host": host})
        assert answer.status == 421, (path, host)
    answer = await client.post("/graphql", json=QUERY, headers={"Host": host})
    assert answer.status == 421 and "ML_DASH_ALLOWED_HOSTS" in (await answer.json())["error"]


async def test_configured_host_names_are_answered(make_client):
    client = await make_client(allowed_hosts=("dash.example.org",))
    assert (await client.get("/health", headers={"Host": "dash.example.org:443"})).status == 200
    assert (await client.get("/health", headers={"Host": "evil.example"})).status == 421


def test_allowed_hosts_setting(monkeypatch):
    monkeypatch.setenv("ML_DASH_ALLOWED_HOSTS", "a.example, b.example:8000")
    config = ServerConfig.resolve()
    assert config.allowed_hosts == ("a.example", "b.example:8000")
    assert {"a.example", "b.example", "localhost"} <= allowed_host_names(config)
    assert ServerConfig.resolve(allowed_hosts=["c.example"]).allowed_hosts == ("c.example",)
    # A non-loopback bind (tokens required) answers any Host unless names are configured.
    assert allowed_host_names(ServerConfig(host="0.0.0.0", tokens={"t": None})) is None
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM:1") == "example.com"


async def test_security_headers_on_every_answer(client):
    for path in ("/", "/static/js/main.js", "/health", "/api/v1/experiments", "/no-such-page"):
        answer = await client.get(path)
        csp = answer.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "'unsafe-eval'" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", path
        assert answer.headers.get("X-Frame-Options") == "DENY", path
    answer = await client.post("/graphql", json=QUERY)
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"


async def test_file_downloads_are_attachments(client):
    experiment_id = await new_experiment(client)
    page = b"<html><script>alert(document.domain)</script></html>"
    for path, expected in (("report/evil.html", 'filename="evil.html"'),
                           ("plots/ü b.svg", "filename*=UTF-8''%C3%BC%20b.svg")):
        assert (await client.put(f"/api/v1/experiments/{experiment_id}/files/{path}", data=page)).status == 200
        answer = await client.get(f"/api/v1/experiments/{experiment_id}/files/{path}")
        assert answer.status == 200 and await answer.read() == page
        disposition = answer.headers["Content-Disposition"]
        assert disposition.startswith("attachment;") and expected in disposition, disposition
        assert answer.headers["Content-Type"] == "application/octet-stream"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
