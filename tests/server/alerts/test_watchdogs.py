"""Time-based and event rules: a stalled run (with an injected clock, no sleeping), a run's state, and a receiver that
is down or hangs (retried, then a recorded failure; ingest never waits for it)."""
from __future__ import annotations

import asyncio
import time

from tests.server.alerts.conftest import LOOPBACK_ALLOWED, create_rule, engine, graphql
from tests.server.conftest import metric_batch, new_experiment, new_run, post_batch
from ml_dash.format.retry import Backoff
from ml_dash.server.testing import free_port


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_stalled_run_fires_once_and_resolves_when_data_comes_back(make_client, receiver):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    clock = engine(client).clock = Clock()
    await create_rule(client, receiver.url, "stall", {"minutes": 10})
    experiment_id = await new_experiment(client)
    run_id = await new_run(client, experiment_id)
    assert (await post_batch(client, experiment_id, metric_batch(0, 1, range(1), run_id=run_id))).status == 200
    await engine(client).tick()
    clock.now += 9 * 60
    await engine(client).tick()  # 9 minutes without data: not yet
    clock.now += 2 * 60
    await engine(client).tick()
    await engine(client).tick()  # still stalled: the same alert
    fired = (await receiver.next())["json"]
    assert fired["event"] == "fired" and fired["alert"]["run_id"] == run_id and "no data" in fired["alert"]["title"]

    assert (await post_batch(client, experiment_id, metric_batch(1, 2, range(1, 2), run_id=run_id))).status == 200
    await engine(client).tick()
    assert (await receiver.next())["json"]["event"] == "resolved"
    await engine(client).settle()
    assert receiver.received.empty()


async def test_run_state_rule_fires_for_sigterm_not_for_completion(make_client, receiver):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    await create_rule(client, receiver.url, "state")
    experiment_id = await new_experiment(client)
    completed, killed = await new_run(client, experiment_id, "a"), await new_run(client, experiment_id, "b")
    for run_id, body in ((completed, {"status": "COMPLETED"}),
                         (killed, {"status": "FAILED", "error": "terminated by SIGTERM"})):
        assert (await client.patch(f"/api/v1/runs/{run_id}", json=body)).status == 200
    fired = (await receiver.next())["json"]
    assert fired["alert"]["run_id"] == killed and "SIGTERM" in fired["alert"]["title"]
    await engine(client).settle()
    assert receiver.received.empty()  # an event: no "resolved" follows, and COMPLETED was not asked for
    [alert] = (await graphql(client, "{ alerts { resolvedAt firedAt } }"))["data"]["alerts"]
    assert alert["resolvedAt"] == alert["firedAt"]


async def test_receiver_down_is_retried_then_recorded_failed(make_client):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    alerts = engine(client)
    clock, alerts.max_attempts, alerts.backoff = Clock(), 3, Backoff(base=1.0, cap=1.0, jitter=0.0)
    alerts.clock = clock
    nobody = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    await create_rule(client, nobody, "nonfinite")
    experiment_id = await new_experiment(client)
    answer = await post_batch(client, experiment_id, metric_batch(0, 1, range(1), value=lambda s: float("nan")))
    assert answer.status == 200
    for _ in range(3):
        await alerts.settle()
        clock.now += 5  # past the backoff
    [alert] = (await graphql(client, "{ alerts { deliveries attempts } }"))["data"]["alerts"]
    [delivery] = alert["deliveries"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert "Connect" in delivery["last_error"]
    assert [a["http_status"] for a in alert["attempts"]] == [None] * 3 and all(a["error"] for a in alert["attempts"])


async def test_ingest_never_waits_for_a_hanging_receiver(make_client, receiver):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    receiver.gate.clear()
    await create_rule(client, receiver.url, "nonfinite")
    experiment_id = await new_experiment(client)
    nan = lambda s: float("nan")  # noqa: E731
    assert (await post_batch(client, experiment_id, metric_batch(0, 1, range(1), value=nan))).status == 200
    await receiver.entered.wait()
    # The delivery hangs in the receiver; ingest goes on answering.
    for start in range(1, 20):
        batch = metric_batch(start, start + 1, range(start, start + 1), value=nan)
        assert (await post_batch(client, experiment_id, batch)).status == 200
    assert receiver.received.empty()
    receiver.gate.set()
    assert (await receiver.next())["json"]["event"] == "fired"
