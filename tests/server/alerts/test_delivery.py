"""A NaN reaches a real webhook receiver on loopback, signed; it fires once however many NaNs follow, and resolves."""
from __future__ import annotations

import hashlib
import hmac

from tests.server.alerts.conftest import LOOPBACK_ALLOWED, create_rule, engine, graphql
from tests.server.conftest import metric_batch, new_experiment, new_run, post_batch


async def test_nan_fires_once_signed_and_resolves(make_client, receiver):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    rule = await create_rule(client, receiver.url, "nonfinite", {"metric": "loss"}, webhook={"secret": "s3cret"})
    assert rule["hasSecret"] is True and "s3cret" not in str(rule)
    experiment_id = await new_experiment(client)
    run_id = await new_run(client, experiment_id)
    nan_every_step = metric_batch(0, 10, range(10), run_id=run_id, value=lambda s: float("nan") if s >= 3 else 1.0)
    assert (await post_batch(client, experiment_id, nan_every_step)).status == 200
    more_nans = metric_batch(10, 20, range(10, 20), run_id=run_id, value=lambda s: float("nan"))
    assert (await post_batch(client, experiment_id, more_nans)).status == 200

    fired = await receiver.next()
    body = fired["json"]
    assert body["event"] == "fired" and body["rule"]["kind"] == "nonfinite"
    assert body["alert"]["experiment_id"] == experiment_id and body["alert"]["run_id"] == run_id
    assert "loss" in body["alert"]["title"] and "step 3" in body["alert"]["text"]
    stamp = fired["headers"]["X-ML-Dash-Timestamp"]
    expected = "sha256=" + hmac.new(b"s3cret", stamp.encode() + b"." + fired["raw"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fired["headers"]["X-ML-Dash-Signature"], expected)

    finite_again = metric_batch(20, 30, range(20, 30), run_id=run_id)
    assert (await post_batch(client, experiment_id, finite_again)).status == 200
    resolved = await receiver.next()
    assert resolved["json"]["event"] == "resolved" and resolved["json"]["alert"]["id"] == body["alert"]["id"]
    await engine(client).settle()
    assert receiver.received.empty() and receiver.hits == 2  # one alert for twenty NaNs, then its resolution

    answer = await graphql(client, "{ alerts(namespace: \"alice\") { id late resolvedAt deliveries attempts } }")
    [alert] = answer["data"]["alerts"]
    assert alert["resolvedAt"] is not None and [d["status"] for d in alert["deliveries"]] == ["sent", "sent"]
    assert [a["http_status"] for a in alert["attempts"]] == [200, 200]


async def test_slack_and_discord_bodies(make_client, receiver):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    for form in ("slack", "discord"):
        await create_rule(client, receiver.url, "nonfinite", {"metric": "loss"}, name=form, webhook={"format": form},
                          cooldown=0)
    experiment_id = await new_experiment(client)
    nan = metric_batch(0, 1, range(1), value=lambda s: float("nan"))
    assert (await post_batch(client, experiment_id, nan)).status == 200
    bodies = {tuple(sorted(m["json"])): m for m in [await receiver.next(), await receiver.next()]}
    slack, discord = bodies[("text",)], bodies[("content", "embeds")]
    assert slack["json"]["text"].startswith("*alice/vision/exp: loss not finite") and "X-ML-Dash-Signature" not in \
        slack["headers"]
    assert "loss not finite" in discord["json"]["content"] and discord["json"]["embeds"][0]["color"] == 0xEF4444
    assert (await post_batch(client, experiment_id, metric_batch(1, 2, range(1, 2)))).status == 200
    resolved = [(await receiver.next())["json"] for _ in range(2)]
    assert any(r.get("text", "").startswith("*RESOLVED") for r in resolved)
    assert any(r.get("embeds", [{}])[0].get("color") == 0x22C55E for r in resolved)
