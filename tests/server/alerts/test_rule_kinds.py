"""Each rule kind fires once on a real loopback receiver, and resolves when its condition clears."""
from __future__ import annotations

import pytest

from tests.server.alerts.conftest import LOOPBACK_ALLOWED, create_rule, engine
from tests.server.conftest import MSGPACK, metric_batch, new_experiment, new_run, packb, post_batch


async def setup(make_client, receiver, kind, params):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    await create_rule(client, receiver.url, kind, params, cooldown=0)
    experiment_id = await new_experiment(client)
    return client, experiment_id, await new_run(client, experiment_id)


async def send_values(client, experiment_id, run_id, start, values, name="loss", stream_id="c1:metrics"):
    batch = metric_batch(start, start + len(values), range(start, start + len(values)), run_id=run_id, name=name,
                         value=lambda s: values[s - start], stream_id=stream_id)
    assert (await post_batch(client, experiment_id, batch)).status == 200
    return start + len(values)


async def expect(receiver, client, events):
    for event in events:
        assert (await receiver.next())["json"]["event"] == event
    await engine(client).settle()
    assert receiver.received.empty(), "one alert per condition, one resolution"


@pytest.mark.parametrize("kind, params, bad, good", [
    ("threshold", {"metric": "loss", "op": ">", "value": 10.0}, [1.0, 50.0, 60.0, 70.0], [5.0]),
    ("change", {"metric": "loss", "percent": 50.0, "window": 2}, [1.0, 1.0, 1.0, 3.0, 9.0], [9.0, 9.0, 9.0]),
    ("zscore", {"metric": "loss", "z": 3.0, "window": 5}, [1.0, 1.1, 0.9, 1.0, 1.05, 40.0], [1.0]),
])
async def test_metric_kinds_fire_once_and_resolve(make_client, receiver, kind, params, bad, good):
    client, experiment_id, run_id = await setup(make_client, receiver, kind, params)
    offset = await send_values(client, experiment_id, run_id, 0, bad)
    offset = await send_values(client, experiment_id, run_id, offset, bad[-1:])  # still bad: no second alert
    await send_values(client, experiment_id, run_id, offset, good)
    await expect(receiver, client, ["fired", "resolved"])


async def test_gpu_idle_for_minutes_fires_and_resolves(make_client, receiver):
    client, experiment_id, run_id = await setup(make_client, receiver, "below", {
        "metric": "system/gpu.*.utilization_percent", "value": 10.0, "minutes": 5})

    async def rows(start, utilisations):  # one system row a minute
        body = {"run_id": run_id, "stream": "system", "stream_id": "c1:system", "start": start,
                "end": start + len(utilisations),
                "events": [{"timestamp": 1000.0 + 60 * (start + i), "step": None,
                            "metrics": {"gpu.0.utilization_percent": u}} for i, u in enumerate(utilisations)]}
        answer = await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=packb(body), headers=MSGPACK)
        assert answer.status == 200, await answer.text()
        return start + len(utilisations)

    offset = await rows(0, [95.0, 2.0, 1.0, 0.0])  # idle for 2 minutes: not yet
    offset = await rows(offset, [0.0, 0.0, 0.0, 0.0])  # idle for 6 minutes
    await rows(offset, [97.0])
    await expect(receiver, client, ["fired", "resolved"])


async def test_user_rules_ignore_system_rows_and_other_names(make_client, receiver):
    client, experiment_id, run_id = await setup(make_client, receiver, "nonfinite", {})
    offset = await send_values(client, experiment_id, run_id, 0, [float("inf")], name="acc")
    await send_values(client, experiment_id, run_id, offset, [1.0], name="acc")
    await expect(receiver, client, ["fired", "resolved"])


async def test_replayed_batch_is_not_evaluated_twice(make_client, receiver):
    client, experiment_id, run_id = await setup(make_client, receiver, "nonfinite", {"metric": "loss"})
    batch = metric_batch(0, 3, range(3), run_id=run_id, value=lambda s: float("nan"))
    assert (await post_batch(client, experiment_id, batch)).status == 200
    assert (await (await post_batch(client, experiment_id, batch)).json())["duplicate"] is True
    await expect(receiver, client, ["fired"])
