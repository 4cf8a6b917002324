"""Rules are namespaced by token like everything else; webhook URLs are checked, restricted by the allow-list, and
their secrets (the HMAC secret, a Slack URL's path) never come back in answers."""
from __future__ import annotations

import ipaddress

import pytest

from tests.server.alerts.conftest import CREATE, LOOPBACK_ALLOWED, create_rule, graphql
from ml_dash.server.alerts.delivery import GuardedResolver, RefusedAddress
from ml_dash.server.alerts.rules import WebhookAllowList

TOKENS = {"tok-alice": frozenset({"alice"}), "tok-bob": frozenset({"bob"})}
ALICE, BOB = {"Authorization": "Bearer tok-alice"}, {"Authorization": "Bearer tok-bob"}


def rule(namespace="alice", url="https://hooks.example.com/x", **extra):
    return {"namespace": namespace, "kind": "nonfinite", "webhook": {"url": url}, **extra}


async def test_a_token_for_another_namespace_can_neither_read_nor_create_rules_there(make_client):
    client = await make_client(tokens=TOKENS)
    mine = (await graphql(client, CREATE, {"rule": rule()}, headers=ALICE))["data"]["createAlertRule"]
    assert "errors" in await graphql(client, CREATE, {"rule": rule()}, headers=BOB, status=403)
    assert "errors" in await graphql(client, '{ alertRules(namespace: "alice") { id } }', headers=BOB, status=403)
    assert (await graphql(client, "{ alertRules { id } }", headers=BOB))["data"]["alertRules"] == []
    assert "errors" in await graphql(client, '{ alerts(namespace: "alice") { id } }', headers=BOB, status=403)
    for mutation in ('mutation { deleteAlertRule(id: "%s") }',
                     'mutation { updateAlertRule(id: "%s", changes: {enabled: false}) { id } }'):
        assert "errors" in await graphql(client, mutation % mine["id"], headers=BOB, status=403)
    [still] = (await graphql(client, "{ alertRules { id enabled } }", headers=ALICE))["data"]["alertRules"]
    assert still == {"id": mine["id"], "enabled": True}


async def test_secrets_are_never_echoed(make_client):
    client = await make_client()
    slack = "https://hooks.slack.com/services/T000/B000/SECRETPATH"
    made = await graphql(client, CREATE, {"rule": {**rule(), "webhook": {"url": slack, "format": "slack",
                                                                          "secret": "hmac-key"}}})
    answer = await graphql(client, "{ alertRules { id webhookUrl webhookFormat hasSecret } }")
    text = str(made) + str(answer)
    assert "SECRETPATH" not in text and "hmac-key" not in text
    assert answer["data"]["alertRules"][0]["webhookUrl"] == "https://hooks.slack.com/…"


@pytest.mark.parametrize("url, allow, error", [
    ("ftp://hooks.example.com/x", (), "http:// or https://"),
    ("file:///etc/passwd", (), "http:// or https://"),
    ("http://user:pw@hooks.example.com/x", (), "credentials"),
    ("http://127.0.0.1:9/x", (), "does not send webhooks"),
    ("http://localhost:9/x", (), "does not send webhooks"),
    ("http://10.1.2.3/x", (), "does not send webhooks"),
    ("http://169.254.169.254/latest/meta-data", (), "does not send webhooks"),
    ("http://[::1]:9/x", (), "does not send webhooks"),
    ("https://evil.example.org/x", ("hooks.slack.com",), "does not send webhooks"),
    ("http://127.0.0.2/x", LOOPBACK_ALLOWED, "does not send webhooks"),
])
async def test_webhook_urls_are_checked_and_restricted(make_client, url, allow, error):
    client = await make_client(alert_webhook_allow=allow)
    answer = await graphql(client, CREATE, {"rule": rule(url=url)})
    assert error in answer["errors"][0]["message"]


async def test_the_allow_list_admits_what_it_names(make_client):
    client = await make_client(alert_webhook_allow=("hooks.slack.com", "10.0.0.0/8"))
    for url in ("https://hooks.slack.com/services/x", "http://10.1.2.3:8080/hook"):
        assert "errors" not in await graphql(client, CREATE, {"rule": rule(url=url)})


async def test_a_permitted_name_that_resolves_inward_is_refused_when_sent():
    """DNS rebinding: the name passed the allow-list when the rule was made, its address is checked at send time."""
    resolver = GuardedResolver(WebhookAllowList(["*"]))
    with pytest.raises(RefusedAddress):
        await resolver.resolve("localhost", 80)
    assert WebhookAllowList(["127.0.0.0/8"]).allows_address(ipaddress.ip_address("127.0.0.1"))
    await resolver.close()


@pytest.mark.parametrize("bad, error", [
    ({"kind": "threshold", "params": {"metric": "loss"}}, "missing op, value"),
    ({"kind": "threshold", "params": {"metric": "loss", "op": "=", "value": 1}}, "params.op"),
    ({"kind": "zscore", "params": {"metric": "loss", "window": 10**6}}, "params.window"),
    ({"kind": "stall", "params": {"minutes": -1}}, "params.minutes"),
    ({"kind": "teleport"}, "'kind' must be one of"),
    ({"kind": "nonfinite", "namespace": "../x"}, "namespace"),
    ({"kind": "nonfinite", "webhook": {"url": "https://hooks.example.com/x", "format": "teams"}}, "webhook.format"),
])
async def test_bad_rules_get_an_error_naming_the_field(make_client, bad, error):
    client = await make_client()
    answer = await graphql(client, CREATE, {"rule": {**rule(), **bad}})
    assert error in answer["errors"][0]["message"]


async def test_rules_are_edited_and_deleted(make_client, receiver):
    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    made = await create_rule(client, receiver.url, "threshold", {"metric": "loss", "op": ">", "value": 1})
    changed = await graphql(client, 'mutation($c: JSON!) { updateAlertRule(id: "%s", changes: $c) { name params } }'
                            % made["id"], {"c": {"name": "loss high", "params": {"metric": "loss", "op": ">",
                                                                                  "value": 5}}})
    assert changed["data"]["updateAlertRule"] == {"name": "loss high",
                                                  "params": {"metric": "loss", "op": ">", "value": 5.0}}
    assert (await graphql(client, 'mutation { deleteAlertRule(id: "%s") }' % made["id"]))["data"] == \
        {"deleteAlertRule": True}
    assert (await graphql(client, "{ alertRules { id } }"))["data"]["alertRules"] == []


async def test_a_rule_made_under_a_wider_allow_list_is_not_sent(make_client, receiver):
    """The server restarted with a narrower ML_DASH_ALERT_WEBHOOK_ALLOW: rules stored before are checked at send."""
    from tests.server.alerts.conftest import engine
    from tests.server.conftest import metric_batch, new_experiment, post_batch

    client = await make_client(alert_webhook_allow=LOOPBACK_ALLOWED)
    await create_rule(client, receiver.url, "nonfinite")
    engine(client).allow = WebhookAllowList()  # public addresses only now
    experiment_id = await new_experiment(client)
    assert (await post_batch(client, experiment_id, metric_batch(0, 1, range(1), value=lambda s: float("nan")))
            ).status == 200
    await engine(client).settle()
    [alert] = (await graphql(client, "{ alerts { deliveries } }"))["data"]["alerts"]
    assert alert["deliveries"][0]["status"] == "failed" and "ALERT_WEBHOOK_ALLOW" in alert["deliveries"][0]["last_error"]
    assert receiver.hits == 0
