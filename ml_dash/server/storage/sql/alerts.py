"""Alert rules, alerts, webhook deliveries and their attempts, as bodies both SQL backends run (docs/alerts.md).

Everything several workers must agree on is decided by the database, never by a process's memory:

- an alert is opened by an ``INSERT ... ON CONFLICT DO NOTHING`` against the partial unique index on its open row
  (rule, experiment, key), so two workers seeing the same NaN open one alert and queue one delivery;
- a delivery is claimed with ``UPDATE ... WHERE claimed_until IS NULL OR claimed_until < now``, one statement, so
  exactly one worker's claim changes the row; a claim is a lease, and a worker that died mid-send leaves a delivery
  another worker picks up once the lease has run out.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Sequence

import orjson

from ml_dash.server.errors import NotFound
from ml_dash.server.storage.sql.protocol import ROW, ROWS, RUN, Body, reads, writes

RULE_FIELDS = ("pk", "id", "namespace", "workspace", "directory", "experiment_id", "name", "kind", "params", "level",
               "webhook_url", "webhook_format", "secret", "cooldown", "enabled", "created_at", "updated_at")
ALERT_FIELDS = ("id", "rule_id", "rule_name", "namespace", "experiment_id", "run_id", "key", "level", "title", "text",
                "late", "fired_at", "resolved_at")
ATTEMPT_FIELDS = ("event", "at", "http_status", "error", "seconds")
_ALERT_SELECT = ("SELECT a.id, r.id, r.name, a.namespace, a.experiment_id, a.run_id, a.key, a.level, a.title, a.text, "
                 "a.late, a.fired_at, a.resolved_at FROM alerts a JOIN alert_rules r ON r.pk = a.rule_pk")
# What is editable on a rule after it is made (its scope and kind are not: make another rule).
EDITABLE = ("name", "params", "level", "webhook_url", "webhook_format", "secret", "cooldown", "enabled")


def _rule(row: Sequence) -> dict[str, Any]:
    rule = dict(zip(RULE_FIELDS, row))
    rule["params"], rule["enabled"] = orjson.loads(rule["params"]), bool(rule["enabled"])
    return rule


def _alert(row: Sequence) -> dict[str, Any]:
    alert = dict(zip(ALERT_FIELDS, row))
    alert["late"] = bool(alert["late"])
    return alert


class AlertStore:
    """The alert tables' bodies, mixed into ``SQLStorage``."""

    # rules
    @writes
    def create_alert_rule(self, rule: dict[str, Any]):
        rule_id, now = uuid.uuid4().hex, time.time()
        yield RUN, ("INSERT INTO alert_rules (id, namespace, workspace, directory, experiment_id, name, kind, params, "
                    "level, webhook_url, webhook_format, secret, cooldown, enabled, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), (
            rule_id, rule["namespace"], rule.get("workspace"), rule.get("directory"), rule.get("experiment_id"),
            rule["name"], rule["kind"], orjson.dumps(rule["params"]).decode(), rule["level"], rule["webhook_url"],
            rule["webhook_format"], rule.get("secret"), rule["cooldown"], int(rule.get("enabled", True)), now, now)
        return rule_id

    @writes
    def update_alert_rule(self, rule_id: str, changes: dict[str, Any]):
        sets, args = [], []
        for key in EDITABLE:
            if key in changes:
                value = changes[key]
                sets.append(f"{key} = ?")
                args.append(orjson.dumps(value).decode() if key == "params" else
                            int(value) if key == "enabled" else value)
        if (yield RUN, f"UPDATE alert_rules SET {', '.join([*sets, 'updated_at = ?'])} "
                       "WHERE id = ? AND deleted_at IS NULL", (*args, time.time(), rule_id)) != 1:
            raise NotFound(f"no alert rule {rule_id!r}")

    @writes
    def delete_alert_rule(self, rule_id: str):
        # Soft: the rule's alerts keep naming it; its open alerts are closed without a "resolved" delivery.
        now = time.time()
        if (yield RUN, "UPDATE alert_rules SET deleted_at = ?, enabled = 0 WHERE id = ? AND deleted_at IS NULL",
                (now, rule_id)) != 1:
            raise NotFound(f"no alert rule {rule_id!r}")
        yield RUN, ("UPDATE alerts SET resolved_at = ? WHERE resolved_at IS NULL AND rule_pk = "
                    "(SELECT pk FROM alert_rules WHERE id = ?)"), (now, rule_id)

    @reads
    def alert_rules(self, namespaces: frozenset[str] | None = None, rule_id: str | None = None):
        """The live rules (with their secrets: answers leave them out) of ``namespaces`` (None: all)."""
        sql, args = f"SELECT {', '.join(RULE_FIELDS)} FROM alert_rules WHERE deleted_at IS NULL", []
        if namespaces is not None:
            clause, values = self._in("namespace", sorted(namespaces), "text")
            sql, args = f"{sql} AND {clause}", [*args, *values]
        if rule_id is not None:
            sql, args = f"{sql} AND id = ?", [*args, rule_id]
        return [_rule(row) for row in (yield ROWS, sql + " ORDER BY pk", args)]

    # alerts
    @writes
    def open_alert(self, rule_pk: int, namespace: str, experiment_id: str, run_id: str | None, key: str, level: str,
                   title: str, text: str | None, late: bool, now: float, instant: bool = False):
        """Open an alert and queue its "fired" delivery; None when one is open already (another worker's, or
        this one's from before a restart): the partial unique index decides. ``instant``: an event (a run's state,
        an ``exp.alert``), closed as it opens; it has no "resolved" delivery."""
        alert_id = uuid.uuid4().hex
        if not (yield RUN, ("INSERT INTO alerts (id, rule_pk, namespace, experiment_id, run_id, key, level, title, "
                            "text, late, fired_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT DO NOTHING"),
                (alert_id, rule_pk, namespace, experiment_id, run_id, key, level, title, text, int(late), now,
                 now if instant else None)):
            return None
        yield from self._queue_delivery(alert_id, "fired", now)
        return alert_id

    @writes
    def resolve_alert(self, rule_pk: int, experiment_id: str, key: str, now: float):
        """Close the open alert of (rule, experiment, key) and queue its "resolved" delivery; False if none was."""
        row = yield ROW, ("SELECT id FROM alerts WHERE rule_pk = ? AND experiment_id = ? AND key = ? "
                          "AND resolved_at IS NULL"), (rule_pk, experiment_id, key)
        if row is None or (yield RUN, "UPDATE alerts SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL",
                           (now, row[0])) != 1:
            return False
        yield from self._queue_delivery(row[0], "resolved", now)
        return True

    @reads
    def open_alert_keys(self, rule_pk: int):
        """(experiment id, key) of a rule's open alerts."""
        rows = yield ROWS, "SELECT experiment_id, key FROM alerts WHERE rule_pk = ? AND resolved_at IS NULL", (rule_pk,)
        return {(row[0], row[1]) for row in rows}

    def _queue_delivery(self, alert_id: str, event: str, now: float) -> Body[None]:
        yield RUN, ("INSERT INTO alert_deliveries (alert_pk, event, status, attempts, next_at, created_at) "
                    "SELECT pk, ?, 'pending', 0, ?, ? FROM alerts WHERE id = ?"), (event, now, now, alert_id)

    @reads
    def list_alerts(self, namespaces: frozenset[str] | None, experiment_ids: Sequence[str] | None = None,
                    open_only: bool = False, limit: int = 100):
        """Alerts newest first, with the state of their latest delivery."""
        clauses, args = ["1 = 1"], []
        if namespaces is not None:
            clause, values = self._in("a.namespace", sorted(namespaces), "text")
            clauses.append(clause)
            args += values
        if experiment_ids is not None:
            clause, values = self._in("a.experiment_id", list(experiment_ids), "text")
            clauses.append(clause)
            args += values
        if open_only:
            clauses.append("a.resolved_at IS NULL")
        rows = yield ROWS, f"{_ALERT_SELECT} WHERE {' AND '.join(clauses)} ORDER BY a.pk DESC LIMIT ?", (*args, limit)
        return [_alert(row) for row in rows]

    @reads
    def alert_attempts(self, alert_id: str):
        """Every delivery attempt of an alert, oldest first, and each delivery's state."""
        deliveries = yield ROWS, ("SELECT d.pk, d.event, d.status, d.attempts, d.last_error FROM alert_deliveries d "
                                  "JOIN alerts a ON a.pk = d.alert_pk WHERE a.id = ? ORDER BY d.pk"), (alert_id,)
        attempts = yield ROWS, ("SELECT d.event, t.at, t.http_status, t.error, t.seconds FROM alert_attempts t "
                                "JOIN alert_deliveries d ON d.pk = t.delivery_pk JOIN alerts a ON a.pk = d.alert_pk "
                                "WHERE a.id = ? ORDER BY t.pk"), (alert_id,)
        return ([{"event": e, "status": s, "attempts": n, "last_error": err} for _, e, s, n, err in deliveries],
                [dict(zip(ATTEMPT_FIELDS, row)) for row in attempts])

    @reads
    def get_alert(self, alert_id: str):
        row = yield ROW, f"{_ALERT_SELECT} WHERE a.id = ?", (alert_id,)
        if row is None:
            raise NotFound(f"no alert {alert_id!r}")
        return _alert(row)

    # deliveries
    @writes
    def claim_deliveries(self, now: float, lease: float, limit: int):
        """Up to ``limit`` due deliveries, each claimed for ``lease`` seconds by this caller alone (module doc)."""
        due = yield ROWS, ("SELECT pk FROM alert_deliveries WHERE status = 'pending' AND next_at <= ? "
                           "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY pk LIMIT ?"), (now, now, limit)
        claimed = []
        for (pk,) in due:
            if (yield RUN, ("UPDATE alert_deliveries SET claimed_until = ? WHERE pk = ? AND status = 'pending' "
                            "AND (claimed_until IS NULL OR claimed_until < ?)"), (now + lease, pk, now)) == 1:
                claimed.append(pk)
        found = []
        for pk in claimed:
            row = yield ROW, ("SELECT d.pk, d.event, d.attempts, a.id FROM alert_deliveries d "
                              "JOIN alerts a ON a.pk = d.alert_pk WHERE d.pk = ?"), (pk,)
            rule = yield ROW, (f"SELECT {', '.join('r.' + f for f in RULE_FIELDS)} FROM alert_rules r "
                               "JOIN alerts a ON a.rule_pk = r.pk WHERE a.id = ?"), (row[3],)
            alert = _alert((yield ROW, f"{_ALERT_SELECT} WHERE a.id = ?", (row[3],)))
            found.append({"pk": row[0], "event": row[1], "attempts": row[2], "alert": alert, "rule": _rule(rule)})
        return found

    @writes
    def finish_attempt(self, delivery_pk: int, now: float, http_status: int | None, error: str | None,
                       seconds: float, next_at: float | None, failed: bool):
        """Record one attempt; the delivery is then sent (no error), retried at ``next_at``, or ``failed``."""
        yield RUN, "INSERT INTO alert_attempts (delivery_pk, at, http_status, error, seconds) VALUES (?, ?, ?, ?, ?)", \
            (delivery_pk, now, http_status, error, seconds)
        status = "sent" if error is None else "failed" if failed else "pending"
        yield RUN, ("UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, last_error = ?, "
                    "next_at = COALESCE(?, next_at), claimed_until = NULL, finished_at = ? WHERE pk = ?"), (
            status, error, next_at, None if status == "pending" else now, delivery_pk)

    # the stall watchdog
    @writes
    def save_heartbeats(self, beats: dict[str, tuple[float | None, float]]):
        """``run id → (last data time or None, last batch time)``, merged as the latest of every worker's."""
        for run_id, (data_at, beat_at) in beats.items():
            yield RUN, ("INSERT INTO alert_heartbeats (run_id, data_at, beat_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (run_id) DO UPDATE SET "
                        "data_at = CASE WHEN alert_heartbeats.data_at IS NULL OR excluded.data_at > "
                        "alert_heartbeats.data_at THEN excluded.data_at ELSE alert_heartbeats.data_at END, "
                        "beat_at = CASE WHEN excluded.beat_at > alert_heartbeats.beat_at THEN excluded.beat_at "
                        "ELSE alert_heartbeats.beat_at END"), (run_id, data_at, beat_at)

    @reads
    def running_runs(self, namespace: str, workspace: str | None, directory: str | None,
                     experiment_id: str | None, limit: int):
        """RUNNING runs in a rule's scope with the times the stall watchdog compares: (run id, experiment id,
        started_at, last data time, last batch time)."""
        sql = ("SELECT r.id, e.id, r.started_at, h.data_at, h.beat_at FROM runs r "
               "JOIN experiments e ON e.pk = r.experiment_pk LEFT JOIN alert_heartbeats h ON h.run_id = r.id "
               "WHERE r.status = 'RUNNING' AND e.deleted_at IS NULL AND e.namespace = ?")
        args: list[Any] = [namespace]
        for column, value in (("e.workspace", workspace), ("e.id", experiment_id)):
            if value is not None:
                sql, args = f"{sql} AND {column} = ?", [*args, value]
        if directory is not None:  # the directory and everything under it
            sql, args = f"{sql} AND (e.directory = ? OR substr(e.directory, 1, ?) = ?)", [
                *args, directory, len(directory) + 1, directory + "/"]
        return [tuple(row) for row in (yield ROWS, f"{sql} ORDER BY r.pk LIMIT ?", (*args, limit))]
