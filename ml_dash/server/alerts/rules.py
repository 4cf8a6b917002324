"""Alert rules as users write them: the kinds, their parameters, their scope and their webhook, checked once here.

A rule arrives as JSON (GraphQL ``createAlertRule(rule: JSON!)``, ``ml-dash alerts add``) and leaves ``check_rule``
as a plain dict the storage keeps and the evaluator reads; every error names the offending field. docs/alerts.md
describes each kind.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import math
from typing import Any, Iterable
from urllib.parse import urlsplit

from ml_dash.format.layout import RUN_STATUSES
from ml_dash.format.limits import MAX_NAME_LENGTH
from ml_dash.format.names import check_segments

# kind → (required parameters, defaults of the optional ones)
KINDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "nonfinite": ((), {"metric": "*"}),  # a value became NaN or ±Inf
    "threshold": (("metric", "op", "value"), {}),  # a value crossed a threshold
    "change": (("metric", "percent"), {"window": 10}),  # changed by more than percent over window points
    "zscore": (("metric",), {"z": 4.0, "window": 50}),  # a spike against the rolling window before it
    "below": (("metric", "value", "minutes"), {}),  # stayed below value for minutes (GPU utilisation)
    "stall": (("minutes",), {"what": "data"}),  # no data (or no batch at all: "heartbeat") while RUNNING
    "state": ((), {"states": ["FAILED", "CRASHED", "SIGTERM"]}),  # the run ended (or changed) so
    "client": ((), {}),  # exp.alert(...) from the training code
}
# What a state rule may name besides the stored statuses: two ways a run fails, told apart by its error text.
STATES = (*RUN_STATUSES, "CRASHED", "SIGTERM")
OPS = (">", ">=", "<", "<=")
LEVELS = ("INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("generic", "slack", "discord")
MAX_WINDOW = 1000  # points a change/zscore rule keeps per series: evaluation stays bounded
MAX_RULE_NAME = 200
MAX_URL = 2048
DEFAULT_COOLDOWN_S = 300.0


class RuleError(ValueError):
    """A rule the server refuses; the message names the field."""


def check_rule(spec: Any, allow: "WebhookAllowList") -> dict[str, Any]:
    """A new rule from its JSON: ``{namespace, workspace?, directory?, experimentId?, name, kind, params?, level?,
    webhook: {url, format?, secret?}, cooldown?, enabled?}``."""
    if not isinstance(spec, dict):
        raise RuleError("rule must be an object")
    unknown = set(spec) - {"namespace", "workspace", "directory", "experimentId", "name", "kind", "params", "level",
                           "webhook", "cooldown", "enabled"}
    if unknown:
        raise RuleError(f"unknown rule field(s): {', '.join(sorted(unknown))}")
    rule: dict[str, Any] = {"namespace": _segments(spec, "namespace", nested=False, required=True)}
    for key, nested in (("workspace", False), ("directory", True)):
        rule[key] = _segments(spec, key, nested=nested, required=False)
    experiment_id = spec.get("experimentId")
    if experiment_id is not None and (not isinstance(experiment_id, str) or not experiment_id.isalnum()
                                      or len(experiment_id) > 64):
        raise RuleError("'experimentId' must be an experiment id")
    rule["experiment_id"] = experiment_id
    kind = spec.get("kind")
    if kind not in KINDS:
        raise RuleError(f"'kind' must be one of {', '.join(KINDS)}")
    rule["kind"] = kind
    rule["params"] = check_params(kind, spec.get("params") or {})
    rule.update(check_changes({k: v for k, v in spec.items() if k in ("name", "level", "webhook", "cooldown",
                                                                         "enabled")}, allow, kind))
    rule.setdefault("name", kind)
    rule.setdefault("level", "ERROR" if kind in ("nonfinite", "state", "stall") else "WARNING")
    rule.setdefault("cooldown", DEFAULT_COOLDOWN_S)
    rule.setdefault("enabled", True)
    if "webhook_url" not in rule:
        raise RuleError("'webhook' is required: {url, format?, secret?}")
    return rule


def check_changes(spec: dict[str, Any], allow: "WebhookAllowList", kind: str) -> dict[str, Any]:
    """The editable fields of a rule (storage.sql.alerts.EDITABLE) from their JSON spelling."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "name":
            if not isinstance(value, str) or not 0 < len(value) <= MAX_RULE_NAME or "\x00" in value:
                raise RuleError(f"'name' must be a string of 1 to {MAX_RULE_NAME} characters")
            out["name"] = value
        elif key == "level":
            if not isinstance(value, str) or value.upper() not in LEVELS:
                raise RuleError(f"'level' must be one of {', '.join(LEVELS)}")
            out["level"] = value.upper()
        elif key == "cooldown":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 7 * 86400:
                raise RuleError("'cooldown' must be seconds between 0 and 604800")
            out["cooldown"] = float(value)
        elif key == "enabled":
            if not isinstance(value, bool):
                raise RuleError("'enabled' must be true or false")
            out["enabled"] = value
        elif key == "params":
            out["params"] = check_params(kind, value or {})
        elif key == "webhook":
            out.update(_webhook(value, allow))
        else:
            raise RuleError(f"unknown field {key!r}")
    return out


def check_params(kind: str, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise RuleError("'params' must be an object")
    required, defaults = KINDS[kind]
    unknown = set(params) - set(required) - set(defaults)
    if unknown:
        raise RuleError(f"params of a {kind} rule: unknown {', '.join(sorted(unknown))} (takes "
                        f"{', '.join([*required, *defaults]) or 'none'})")
    missing = [k for k in required if k not in params]
    if missing:
        raise RuleError(f"params of a {kind} rule: missing {', '.join(missing)}")
    out = {**defaults, **params}
    if "metric" in out and (not isinstance(out["metric"], str) or not 0 < len(out["metric"]) <= MAX_NAME_LENGTH):
        raise RuleError(f"params.metric must be a metric name or glob of 1 to {MAX_NAME_LENGTH} characters")
    if "op" in out and out["op"] not in OPS:
        raise RuleError(f"params.op must be one of {', '.join(OPS)}")
    for key, low in (("value", -math.inf), ("percent", 0.0), ("z", 0.0), ("minutes", 0.0)):
        if key in out:
            value = out[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < math.inf \
                    or value != value:
                raise RuleError(f"params.{key} must be a finite number" + (" >= 0" if low == 0 else ""))
            out[key] = float(value)
    if "window" in out:
        window = out["window"]
        if isinstance(window, bool) or not isinstance(window, int) or not 2 <= window <= MAX_WINDOW:
            raise RuleError(f"params.window must be a number of points from 2 to {MAX_WINDOW}")
    if "what" in out and out["what"] not in ("data", "heartbeat"):
        raise RuleError("params.what must be 'data' (metrics and logs) or 'heartbeat' (any batch, system rows too)")
    if "states" in out:
        states = out["states"]
        if not isinstance(states, list) or not states or any(s not in STATES for s in states):
            raise RuleError(f"params.states must be a list of {', '.join(STATES)}")
    return out


def _segments(spec: dict, key: str, *, nested: bool, required: bool) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        if required:
            raise RuleError(f"'{key}' is required")
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise RuleError(f"'{key}' must be a string of at most {MAX_NAME_LENGTH} characters")
    try:
        return check_segments(key, value, allow_nested=nested)
    except ValueError as exc:
        raise RuleError(str(exc)) from None


def _webhook(value: Any, allow: "WebhookAllowList") -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - {"url", "format", "secret"}:
        raise RuleError("'webhook' must be {url, format?, secret?}")
    url, form, secret = value.get("url"), value.get("format", "generic"), value.get("secret")
    if form not in FORMATS:
        raise RuleError(f"webhook.format must be one of {', '.join(FORMATS)}")
    if secret is not None and (not isinstance(secret, str) or not 0 < len(secret) <= 256):
        raise RuleError("webhook.secret must be a string of 1 to 256 characters")
    return {"webhook_url": allow.check_url(url), "webhook_format": form, "secret": secret}


def redacted_url(url: str) -> str:
    """What answers show of a webhook URL: scheme, host and port. A Slack or Discord URL's path is its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…" if parts.path not in ("", "/") else url


class WebhookAllowList:
    """Where webhooks may point (``ML_DASH_ALERT_WEBHOOK_ALLOW``): host names (globs: ``*.slack.com``) and networks
    (``10.0.0.0/8``, ``127.0.0.1``). Without entries, any host whose addresses are public. An address must be public
    or inside a listed network; it is checked again on every address a name resolves to when a delivery is sent
    (``delivery.GuardedResolver``), so a name that resolves inward later is refused then."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.append(entry)

    def check_url(self, url: Any) -> str:
        if not isinstance(url, str) or not 0 < len(url) <= MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
            raise RuleError(f"webhook.url must be an http:// or https:// URL of at most {MAX_URL} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise RuleError("webhook.url is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RuleError("webhook.url must be an http:// or https:// URL with a host")
        if "@" in parts.netloc:
            raise RuleError("webhook.url must not carry credentials; use webhook.secret (HMAC) instead")
        del port
        if not self.allows_host(parts.hostname):
            raise RuleError(f"webhook.url: the server does not send webhooks to {parts.hostname!r} "
                            "(ML_DASH_ALERT_WEBHOOK_ALLOW lists where it may)")
        return url

    def allows_host(self, host: str) -> bool:
        """Whether a URL may name ``host``: an address literal inside a listed network (or public, with no list at
        all), or a name matching a listed glob (any name, with no names listed)."""
        host = host.lower().strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                return self.allows_address(ipaddress.ip_address("127.0.0.1"))
            return not self.names or any(fnmatch.fnmatchcase(host, pattern) for pattern in self.names)
        return any(address in n for n in self.networks) or (address.is_global and not (self.names or self.networks))

    def allows_address(self, address: "ipaddress.IPv4Address | ipaddress.IPv6Address") -> bool:
        """Whether a delivery may connect to ``address`` (what a permitted name resolved to): inside a listed
        network, or public. Loopback, private, link-local and reserved addresses need their network listed."""
        return any(address in network for network in self.networks) or address.is_global
