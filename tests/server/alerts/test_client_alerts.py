"""exp.alert(title, text, level): travels with the run's logs; live it is one webhook per alert, and an offline run's
alerts arrive at sync, marked late and batched into one."""
from __future__ import annotations

import asyncio
import glob
import json
import time

import aiohttp
import pytest

from ml_dash.client.upload.sync_command import sync_paths
from ml_dash.format.limits import ALERT_CONTEXT_KEY
from ml_dash.server.testing import running_server
from tests.server.alerts.conftest import LOOPBACK_ALLOWED, CREATE, create_rule, engine
from tests.server.conftest import MSGPACK, new_experiment, new_run, packb


def test_exp_alert_is_a_log_line_with_its_title(make_exp):
    exp = make_exp("alerting")
    with exp.run():
        exp.alert("loss plateaued", "no progress for 3 epochs", level="error")
    [line] = exp.logs.read()
    assert line["level"] == "ERROR" and line["message"] == "no progress for 3 epochs"
    assert line["context"] == {ALERT_CONTEXT_KEY: "loss plateaued"}
    for bad in ("", 5, "x" * 201):
        with pytest.raises(ValueError, match="title"):
            exp.alert(bad)
    with pytest.raises(ValueError, match="level"):
        exp.alert("t", level="LOUD")


async def test_a_live_alert_is_one_webhook_not_late(make_client, receiver):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    await create_rule(client, receiver.url, "client")
    experiment_id = await new_experiment(client)
    run_id = await new_run(client, experiment_id)
    body = {"run_id": run_id, "stream": "logs", "stream_id": "c1:logs", "start": 0, "end": 1,
            "events": [{"timestamp": time.time(), "level": "ERROR", "message": "grad norm 1e9",
                        "context": {ALERT_CONTEXT_KEY: "exploding gradients"}},
                       {"timestamp": time.time(), "level": "INFO", "message": "an ordinary line"}]}
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=packb(body), headers=MSGPACK)
    assert answer.status == 200
    alert = (await receiver.next())["json"]["alert"]
    assert alert["title"].endswith("exploding gradients") and alert["text"] == "grad norm 1e9"
    assert alert["level"] == "ERROR" and alert["late"] is False
    await engine(client).settle()
    assert receiver.received.empty()


async def test_an_offline_runs_alerts_arrive_at_sync_late_and_as_one(make_exp, tmp_path, receiver):
    exp = make_exp("offline")
    with exp.run():
        for i in range(50):
            exp.alert(f"alert {i}", level="WARNING")
        exp.alert("the worst", level="CRITICAL")
    # The run happened an hour ago: move its log lines' times back (the same bytes otherwise).
    [logs] = glob.glob(str(tmp_path / ".ml-logger" / "**" / "logs.jsonl"), recursive=True)
    lines = [json.loads(line) for line in open(logs)]
    with open(logs, "w") as f:
        for line in lines:
            f.write(json.dumps({**line, "timestamp": line["timestamp"] - 3600}) + "\n")
    with running_server(tmp_path / "data", args=["--alert-webhook-allow", "127.0.0.1/32"]) as base:
        rule = {"namespace": "alice", "kind": "client", "webhook": {"url": receiver.url}}
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/graphql", json={"query": CREATE, "variables": {"rule": rule}}) as answer:
                assert "errors" not in await answer.json()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: sync_paths([str(tmp_path / ".ml-logger")], remote=base, show_progress=False))
        summary = (await receiver.next(timeout=30))["json"]["alert"]
    assert summary["late"] is True and summary["level"] == "CRITICAL"
    assert "51 alerts" in summary["title"] and "the worst" not in summary["text"].split("\n")[0]
    assert "… and 31 more" in summary["text"]
    assert receiver.received.empty() and receiver.hits == 1
