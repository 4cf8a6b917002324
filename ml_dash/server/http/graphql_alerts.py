"""GraphQL's alert fields: rules made, changed and deleted by mutations, alerts and their deliveries read back.

Namespaced like everything else: a token reaches the rules and alerts of its namespaces only (``Scope``), and a rule
is made in a namespace the token may touch. Answers never carry a webhook's secret or the path of its URL (a Slack or
Discord URL's path is itself a secret): ``hasSecret`` and a redacted ``webhookUrl`` instead.
"""
from __future__ import annotations

from typing import Any

from ml_dash.server.alerts.rules import RuleError, WebhookAllowList, check_changes, check_rule, redacted_url
from ml_dash.server.errors import BadRequest, NotFound
from ml_dash.server.http.scope import Scope

ALERTS_SDL = """
type AlertRule { id: ID! namespace: String! workspace: String directory: String experimentId: ID name: String!
  kind: String! params: JSON level: String! webhookUrl: String! webhookFormat: String! hasSecret: Boolean!
  cooldown: Float! enabled: Boolean! createdAt: Float updatedAt: Float }
type Alert { id: ID! ruleId: ID! ruleName: String! namespace: String! experimentId: ID! runId: ID key: String!
  level: String! title: String! text: String late: Boolean! firedAt: Float! resolvedAt: Float
  deliveries: JSON attempts: JSON }

extend type Query {
  alertRules(namespace: String): [AlertRule!]!
  alerts(namespace: String, experimentIds: [ID!], open: Boolean = false, limit: Int = 100): [Alert!]!
}

extend type Mutation {
  createAlertRule(rule: JSON!): AlertRule
  updateAlertRule(id: ID!, changes: JSON!): AlertRule
  deleteAlertRule(id: ID!): Boolean!
}
"""
MAX_ALERTS = 1000
MAX_EXPERIMENT_IDS = 1000


def rule_node(rule: dict[str, Any]) -> dict[str, Any]:
    return {"id": rule["id"], "namespace": rule["namespace"], "workspace": rule["workspace"],
            "directory": rule["directory"], "experimentId": rule["experiment_id"], "name": rule["name"],
            "kind": rule["kind"], "params": rule["params"], "level": rule["level"],
            "webhookUrl": redacted_url(rule["webhook_url"]), "webhookFormat": rule["webhook_format"],
            "hasSecret": bool(rule["secret"]), "cooldown": rule["cooldown"], "enabled": rule["enabled"],
            "createdAt": rule["created_at"], "updatedAt": rule["updated_at"]}


def alert_node(storage: Any, alert: dict[str, Any]) -> dict[str, Any]:
    attempts: dict[str, Any] = {}

    async def history(info, part: int):
        if not attempts:
            attempts["found"] = await storage.alert_attempts(alert["id"])
        return attempts["found"][part]

    return {"id": alert["id"], "ruleId": alert["rule_id"], "ruleName": alert["rule_name"],
            "namespace": alert["namespace"], "experimentId": alert["experiment_id"], "runId": alert["run_id"],
            "key": alert["key"], "level": alert["level"], "title": alert["title"], "text": alert["text"],
            "late": alert["late"], "firedAt": alert["fired_at"], "resolvedAt": alert["resolved_at"],
            "deliveries": lambda info: history(info, 0), "attempts": lambda info: history(info, 1)}


def alert_resolvers(storage: Any, scope: Scope, engine: Any, allow: WebhookAllowList) -> dict[str, Any]:
    """The root fields; ``storage`` and ``engine`` are called on the server's loop (graphql._OnLoop)."""

    async def own_rule(rule_id: str) -> dict[str, Any]:
        found = await storage.alert_rules(rule_id=rule_id)
        if not found:
            raise NotFound(f"no alert rule {rule_id!r}")
        scope.check(found[0]["namespace"])
        return found[0]

    async def alert_rules(info, namespace=None):
        return [rule_node(r) for r in await storage.alert_rules(scope.listing(namespace))]

    async def alerts(info, namespace=None, experimentIds=None, open=False, limit=100):
        limit = 100 if limit is None else limit
        if not 1 <= limit <= MAX_ALERTS:
            raise BadRequest(f"limit must be 1..{MAX_ALERTS}")
        if experimentIds is not None and len(experimentIds) > MAX_EXPERIMENT_IDS:
            raise BadRequest(f"at most {MAX_EXPERIMENT_IDS} experimentIds")
        found = await storage.list_alerts(scope.listing(namespace), experimentIds, bool(open), limit)
        return [alert_node(storage, a) for a in found]

    async def create_rule(info, rule):
        try:
            checked = check_rule(rule, allow)
        except RuleError as exc:
            raise BadRequest(str(exc)) from None
        scope.check(checked["namespace"])
        if checked["experiment_id"] is not None:
            experiment = await scope.experiment(storage, checked["experiment_id"])
            if experiment["namespace"] != checked["namespace"]:
                raise BadRequest("experimentId names an experiment of another namespace")
        rule_id = await storage.create_alert_rule(checked)
        await engine.reload()  # this worker applies it to the next batch; the others within their refresh
        return rule_node((await storage.alert_rules(rule_id=rule_id))[0])

    async def update_rule(info, id, changes):
        rule = await own_rule(id)
        if not isinstance(changes, dict):
            raise BadRequest("changes must be an object")
        try:
            checked = check_changes(changes, allow, rule["kind"])
        except RuleError as exc:
            raise BadRequest(str(exc)) from None
        if checked:
            await storage.update_alert_rule(id, checked)
            await engine.reload()
        return rule_node((await storage.alert_rules(rule_id=id))[0])

    async def delete_rule(info, id):
        await own_rule(id)
        await storage.delete_alert_rule(id)
        await engine.reload()
        return True

    return {"alertRules": alert_rules, "alerts": alerts, "createAlertRule": create_rule,
            "updateAlertRule": update_rule, "deleteAlertRule": delete_rule}
