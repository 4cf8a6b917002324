"""``ml-dash alerts``: a server's alert rules and recent alerts from a terminal (docs/alerts.md), through GraphQL.

``rules``, ``add``, ``rm``, ``enable``/``disable`` and ``recent``. A webhook secret is read from an environment
variable (``--secret-env``), never from the command line, where it would land in the shell's history.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any

import orjson

from ml_dash.query.errors import ApiError
from ml_dash.settings import REMOTE, TOKEN

RULE_FIELDS = "id namespace workspace directory experimentId name kind params level webhookUrl webhookFormat " \
              "hasSecret cooldown enabled"
KINDS = ("nonfinite", "threshold", "change", "zscore", "below", "stall", "state", "client")


def add_alerts_subcommand(sub: "argparse._SubParsersAction") -> None:
    alerts = sub.add_parser("alerts", help="a server's alert rules and recent alerts (docs/alerts.md)")
    alerts.add_argument("--remote", metavar="URL", help="the ml-dash server (default: ML_DASH_REMOTE)")
    alerts.add_argument("--token", help="the server's bearer token (default: ML_DASH_TOKEN)")
    actions = alerts.add_subparsers(dest="action", required=True)
    rules = actions.add_parser("rules", help="list the rules")
    rules.add_argument("--namespace")
    add = actions.add_parser("add", help="make a rule; prints its id")
    add.add_argument("--namespace", required=True)
    add.add_argument("--workspace")
    add.add_argument("--directory")
    add.add_argument("--experiment", metavar="ID", help="one experiment only")
    add.add_argument("--kind", required=True, choices=KINDS)
    add.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a parameter of the kind (VALUE read as JSON when it parses: value=10, "
                          "states='[\"FAILED\"]')")
    add.add_argument("--webhook", required=True, metavar="URL")
    add.add_argument("--format", default="generic", choices=("generic", "slack", "discord"))
    add.add_argument("--secret-env", metavar="VAR", help="environment variable holding the HMAC secret")
    add.add_argument("--name")
    add.add_argument("--level", choices=("INFO", "WARNING", "ERROR", "CRITICAL"))
    add.add_argument("--cooldown", type=float, metavar="SECONDS")
    for name, help_text in (("rm", "delete a rule"), ("enable", "enable a rule"), ("disable", "disable a rule")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("rule_id")
    recent = actions.add_parser("recent", help="recent alerts, newest first")
    recent.add_argument("--namespace")
    recent.add_argument("--experiment", metavar="ID")
    recent.add_argument("--open", action="store_true", help="only alerts whose condition still holds")
    recent.add_argument("--limit", type=int, default=20)
    alerts.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return _ACTIONS[args.action](_source(args), args)
    except (ApiError, ValueError) as exc:
        print(f"ml-dash alerts {args.action}: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1


def _source(args: argparse.Namespace) -> Any:
    from ml_dash.query.remote import RemoteSource

    remote = REMOTE.get(args.remote)
    if not remote or not remote.startswith(("http://", "https://")):
        raise ValueError("give the server: --remote http://host:port (or ML_DASH_REMOTE)")
    return RemoteSource(remote, TOKEN.get(args.token) or None)


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--param must be KEY=VALUE, got {text!r}")
    try:
        return key, orjson.loads(value)
    except orjson.JSONDecodeError:
        return key, value


def _rules(source: Any, args: argparse.Namespace) -> int:
    found = source.graphql(f"query($ns: String) {{ alertRules(namespace: $ns) {{ {RULE_FIELDS} }} }}",
                           {"ns": args.namespace})["alertRules"]
    for rule in found:
        scope = "/".join(p for p in (rule["namespace"], rule["workspace"], rule["directory"]) if p)
        if rule["experimentId"]:
            scope += f" experiment {rule['experimentId']}"
        print(f"{rule['id']}  {'on ' if rule['enabled'] else 'off'}  {rule['kind']:<9}  {rule['name']}  [{scope}]  "
              f"{orjson.dumps(rule['params']).decode()}  → {rule['webhookFormat']} {rule['webhookUrl']}")
    if not found:
        print("no rules")
    return 0


def _add(source: Any, args: argparse.Namespace) -> int:
    webhook: dict[str, Any] = {"url": args.webhook, "format": args.format}
    if args.secret_env:
        secret = os.environ.get(args.secret_env)
        if not secret:
            raise ValueError(f"--secret-env: ${args.secret_env} is not set")
        webhook["secret"] = secret
    rule: dict[str, Any] = {"namespace": args.namespace, "kind": args.kind, "params": dict(map(_param, args.param)),
                            "webhook": webhook}
    for key, value in (("workspace", args.workspace), ("directory", args.directory),
                       ("experimentId", args.experiment), ("name", args.name), ("level", args.level),
                       ("cooldown", args.cooldown)):
        if value is not None:
            rule[key] = value
    made = source.graphql("mutation($r: JSON!) { createAlertRule(rule: $r) { id } }", {"r": rule})
    print(made["createAlertRule"]["id"])
    return 0


def _rm(source: Any, args: argparse.Namespace) -> int:
    source.graphql("mutation($id: ID!) { deleteAlertRule(id: $id) }", {"id": args.rule_id})
    return 0


def _enabled(value: bool):
    def action(source: Any, args: argparse.Namespace) -> int:
        source.graphql("mutation($id: ID!, $c: JSON!) { updateAlertRule(id: $id, changes: $c) { id } }",
                       {"id": args.rule_id, "c": {"enabled": value}})
        return 0

    return action


def _recent(source: Any, args: argparse.Namespace) -> int:
    found = source.graphql(
        "query($ns: String, $ids: [ID!], $open: Boolean, $limit: Int) { alerts(namespace: $ns, experimentIds: $ids, "
        "open: $open, limit: $limit) { id level title firedAt resolvedAt late deliveries } }",
        {"ns": args.namespace, "ids": [args.experiment] if args.experiment else None, "open": args.open,
         "limit": args.limit})["alerts"]
    for alert in found:
        when = datetime.datetime.fromtimestamp(alert["firedAt"]).strftime("%Y-%m-%d %H:%M:%S")
        state = "open" if alert["resolvedAt"] is None else "resolved"
        sent = ",".join(f"{d['event']}:{d['status']}" for d in alert["deliveries"] or [])
        print(f"{when}  {alert['level']:<8} {state:<8} {alert['title']}{' (late)' if alert['late'] else ''}  "
              f"[{sent}]")
    if not found:
        print("no alerts")
    return 0


_ACTIONS = {"rules": _rules, "add": _add, "rm": _rm, "enable": _enabled(True), "disable": _enabled(False),
            "recent": _recent}
