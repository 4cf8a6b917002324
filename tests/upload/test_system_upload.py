"""The system stream and the run environment reach the server: live from a run, and by ``ml-dash sync``."""
import json
import os

import msgpack
from aiohttp import web

from ml_dash.format.layout import STREAMS
from ml_dash.client.upload.state import SyncState
from ml_dash.client.upload.sync_command import sync_paths

from .conftest import get_json
from .fault_proxy import FaultProxy

GRAPHQL = "query($id: ID!) {{ experiment(id: $id) {{ {fields} }} }}"


def graphql(base_url, experiment_id, fields):
    import urllib.request

    body = json.dumps({"query": GRAPHQL.format(fields=fields), "variables": {"id": experiment_id}}).encode()
    request = urllib.request.Request(f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["data"]["experiment"]


def local_system_rows(exp):
    with open(os.path.join(exp.local_path, "system.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_live_run_uploads_system_series_and_environment(make_exp, server, remote_env):
    """By the time complete() returns, the server has every system row as a system/ series and the environment."""
    remote_env(SYSTEM_INTERVAL="0.05")
    exp = make_exp("live", remote=server)
    with exp.run():
        exp.metrics.log(step=0, loss=1.0)
        assert exp._sampler.wait_for(3, timeout=30)
    rows = local_system_rows(exp)
    found = graphql(server, exp.experiment_id, "metricNames systemMetricNames environment "
                                              "metric(name: \"system/process_rss_mb\") { count }")
    assert found["metricNames"] == ["loss"]
    assert "system/cpu_percent" in found["systemMetricNames"]
    assert found["metric"]["count"] == len(rows)
    assert found["environment"] == exp.environment and found["environment"]["packages"]
    assert SyncState(exp.local_path).environment_sent == exp.environment["captured_at"]


def test_ml_dash_sync_uploads_an_offline_runs_system_rows_and_environment(make_exp, server, monkeypatch, tmp_path):
    """A run logged without a server, then `ml-dash sync`: system series and environment arrive; a second sync sends
    neither again."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ML_DASH_SYSTEM_INTERVAL", "0.02")
    exp = make_exp("offline")
    with exp.run():
        assert exp._sampler.wait_for(2, timeout=30)
    rows = local_system_rows(exp)
    [result] = sync_paths([exp.local_path], remote=server, show_progress=False)
    assert result.error is None and result.events["system"] == len(rows)
    state = SyncState(exp.local_path)
    found = graphql(server, state.experiment_id, "systemMetricNames environment")
    assert "system/memory_percent" in found["systemMetricNames"] and found["environment"] == exp.environment
    assert state.environment_sent == exp.environment["captured_at"]
    [again] = sync_paths([exp.local_path], remote=server, show_progress=False)
    assert again.error is None and sum(again.events.values()) == 0
    assert get_json(f"{server}/api/v1/experiments/{state.experiment_id}/environment")["environment"] == exp.environment


def test_a_sync_state_from_before_the_system_stream_still_loads(tmp_path):
    """A .ml-dash-sync.json with only parameters/metrics/logs loads: the system stream starts at offset 0."""
    state_file = tmp_path / ".ml-dash-sync.json"
    state_file.write_text(json.dumps({"client_id": "abc", "remote": "http://x", "experiment_id": "e1",
                                      "acked": {"parameters": 10, "metrics": 20, "logs": 30},
                                      "generations": {"metrics": 1}, "runs": [], "files": {}}))
    state = SyncState(str(tmp_path))
    assert state.acked == {"parameters": 10, "metrics": 20, "logs": 30, "system": 0, "console": 0, "media": 0}
    assert state.stream_id("system") == "abc:system" and state.stream_id("metrics") == "abc:metrics:1"
    assert state.environment_sent is None and list(STREAMS)[-3:] == ["system", "console", "media"]
    state.save()
    assert SyncState(str(tmp_path)).acked == state.acked


class _OlderServer(FaultProxy):
    """The real server behind a proxy that answers as a server without the system stream and the environment route:
    its /health lists the streams it takes, a system batch would get a 400, /environment a 404."""

    def __init__(self, upstream):
        super().__init__(upstream, fault_rate=0.0)
        self.refused = 0

    async def _handle(self, request):
        if request.path == "/health":
            return web.json_response({"ok": True, "protocol": 1, "streams": ["parameters", "metrics", "logs"]})
        if request.path.endswith("/environment"):
            return web.json_response({"error": "Not Found"}, status=404)
        if request.method == "POST" and request.path.endswith("/batches"):
            if msgpack.unpackb(await request.read())["stream"] == "system":  # aiohttp keeps the body for super()
                self.refused += 1
                return web.json_response({"error": "field 'stream' must be one of parameters, metrics, logs"},
                                         status=400)
        return await super()._handle(request)


def test_an_older_server_gets_the_other_streams_and_one_warning(make_exp, server, remote_env, caplog):
    """A server whose /health does not list the system stream: one warning, no system batch is ever sent (the client
    decides from /health, not from an error's text), system.jsonl stays local, the rest arrives and complete() finds
    the upload finished (it does not wait out ML_DASH_UPLOAD_TIMEOUT for lines the server cannot take)."""
    remote_env(SYSTEM_INTERVAL="0.02")
    with _OlderServer(server) as older:
        exp = make_exp("older", remote=older.url)
        with exp.run():
            for step in range(100):
                exp.metrics.log(step=step, loss=1.0 / (step + 1))
            assert exp._sampler.wait_for(5, timeout=30)
        remote = exp._uploader
        assert remote.finished.is_set() and remote.parked is None
    warnings = [r.getMessage() for r in caplog.records if "does not take the 'system' stream" in r.getMessage()]
    assert len(warnings) == 1 and older.refused == 0
    assert not any("refused a line" in r.getMessage() for r in caplog.records)
    names = get_json(f"{server}/api/v1/experiments/{exp.experiment_id}/metrics")["names"]
    assert names == ["loss"]
    assert get_json(f"{server}/api/v1/experiments/{exp.experiment_id}/metrics/loss")["count"] == 100
    assert len(local_system_rows(exp)) >= 5
