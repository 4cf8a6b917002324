"""Compatibility is decided by the protocol number ``GET /health`` answers (docs/protocol.md), not by error text."""
from aiohttp import web

from ml_dash.client.upload.http import PROTOCOL
from ml_dash.client.upload.sync_command import sync_paths

from .conftest import get_json
from .fault_proxy import FaultProxy


class _ServerSpeaking(FaultProxy):
    """The real server behind a proxy whose /health answers another protocol number; counts what else it forwards."""

    def __init__(self, upstream, protocol):
        super().__init__(upstream, fault_rate=0.0)
        self.protocol = protocol
        self.forwarded = []

    async def _handle(self, request):
        if request.path == "/health":
            return web.json_response({"ok": True, "protocol": self.protocol})
        self.forwarded.append(request.path)
        return await super()._handle(request)


def test_the_real_server_answers_the_protocol_this_client_speaks(server):
    assert get_json(f"{server}/health")["protocol"] == PROTOCOL


def test_a_server_of_another_protocol_parks_the_upload_before_any_request(make_exp, server, remote_env):
    """Nothing is sent (not even the experiment), the reason names both numbers, and the data stays local."""
    with _ServerSpeaking(server, PROTOCOL + 1) as other:
        exp = make_exp("newer", remote=other.url)
        with exp.run():
            exp.metrics.log(step=0, loss=1.0)
        parked = exp._uploader.parked
        assert parked is not None and f"protocol {PROTOCOL + 1}" in parked and f"protocol {PROTOCOL}" in parked
        assert other.forwarded == []
    assert get_json(f"{server}/api/v1/experiments")["experiments"] == []
    assert exp.metrics.read()[0]["metrics"] == {"loss": 1.0}


def test_sync_to_a_server_of_another_protocol_reports_it_and_the_same_server_takes_it(make_exp, server, remote_env):
    exp = make_exp("offline")
    with exp.run():
        exp.metrics.log(step=0, loss=1.0)
    with _ServerSpeaking(server, PROTOCOL + 1) as other:
        [result] = sync_paths([exp.local_path], remote=other.url, show_progress=False)
    assert result.error is not None and f"protocol {PROTOCOL + 1}" in result.error
    [result] = sync_paths([exp.local_path], remote=server, show_progress=False)
    assert result.error is None and result.events.get("metrics") == 1
