// #/alerts[?ns=<namespace>&exp=<experiment id>]: the alert rules (add, enable/disable, delete) and the recent alerts,
// per run when ?exp= names one. Everything goes through GraphQL, namespaced by the token like the rest.

import { api } from "./api.js";
import { alertBadges } from "./alert_badges.js";
import { el, setBreadcrumbs } from "./dom.js";
import { navigator_ } from "./navigator.js";

const KINDS = {
  nonfinite: { metric: "loss" },
  threshold: { metric: "loss", op: ">", value: 10 },
  change: { metric: "loss", percent: 50, window: 10 },
  zscore: { metric: "loss", z: 4, window: 50 },
  below: { metric: "system/gpu.*.utilization_percent", value: 10, minutes: 10 },
  stall: { minutes: 15, what: "data" },
  state: { states: ["FAILED", "CRASHED", "SIGTERM"] },
  client: {},
};
const RULE_FIELDS = "id namespace workspace directory experimentId name kind params level webhookUrl webhookFormat hasSecret cooldown enabled";

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "—";
}

function scopeText(rule) {
  const path = [rule.namespace, rule.workspace, rule.directory].filter(Boolean).join("/");
  return rule.experimentId ? `${path} · experiment ${rule.experimentId.slice(0, 8)}` : path;
}

export async function alertsView(main, query) {
  const namespace = query.get("ns") || null;
  const experimentId = query.get("exp") || null;
  setBreadcrumbs(["alerts", "#/alerts"], ...(experimentId ? [[`experiment ${experimentId.slice(0, 8)}`, `#/exp/${experimentId}`]] : []));
  const status = el("p", { class: "muted", id: "alerts-status" });
  const rulesBox = el("div", { class: "table-wrap", id: "alert-rules" });
  const alertsBox = el("div", { class: "table-wrap", id: "recent-alerts" });
  main.append(el("h1", {}, "Alerts"), status, el("h2", {}, "Rules"), rulesBox, ruleForm(namespace, experimentId, reload, status),
    el("h2", {}, experimentId ? "Alerts of this run" : "Recent alerts"), alertsBox);

  async function reload() {
    const data = await api.graphql(`query($ns: String, $ids: [ID!]) {
      alertRules(namespace: $ns) { ${RULE_FIELDS} }
      alerts(namespace: $ns, experimentIds: $ids, limit: 100) { id ruleName experimentId runId level title text late firedAt resolvedAt deliveries }
    }`, { ns: namespace, ids: experimentId ? [experimentId] : null });
    rulesBox.replaceChildren(rulesTable(data.alertRules, reload, status));
    alertsBox.replaceChildren(alertsTable(data.alerts));
    alertBadges.refresh().then(() => navigator_.render()).catch(console.error);
  }
  await reload();
  const timer = setInterval(() => reload().catch(console.error), 5000);
  return { destroy: () => clearInterval(timer) };
}

function rulesTable(rules, reload, status) {
  if (!rules.length) return el("p", { class: "muted" }, "No rules yet: add one below.");
  const act = (mutation, variables) => async () => {
    try {
      await api.graphql(mutation, variables);
      await reload();
    } catch (error) {
      status.textContent = error.message;
    }
  };
  const head = el("tr", {}, ...["name", "kind", "scope", "parameters", "webhook", "level", "cooldown", ""].map((h) => el("th", {}, h)));
  const body = el("tbody", {}, ...rules.map((r) => el("tr", { "data-rule": r.id, class: r.enabled ? "" : "muted" },
    el("td", {}, r.name), el("td", {}, r.kind), el("td", {}, scopeText(r)),
    el("td", {}, el("code", {}, JSON.stringify(r.params))),
    el("td", {}, `${r.webhookFormat} ${r.webhookUrl}${r.hasSecret ? " (signed)" : ""}`), el("td", {}, r.level),
    el("td", { class: "num" }, `${r.cooldown}s`),
    el("td", {},
      el("button", { onclick: act(`mutation($id: ID!, $c: JSON!) { updateAlertRule(id: $id, changes: $c) { id } }`, { id: r.id, c: { enabled: !r.enabled } }) },
        r.enabled ? "disable" : "enable"), " ",
      el("button", { class: "danger", onclick: act(`mutation($id: ID!) { deleteAlertRule(id: $id) }`, { id: r.id }) }, "delete")))));
  return el("table", { class: "grid" }, el("thead", {}, head), body);
}

function alertsTable(alerts) {
  if (!alerts.length) return el("p", { class: "muted" }, "No alerts.");
  const head = el("tr", {}, ...["fired", "level", "alert", "rule", "run", "state", "delivery"].map((h) => el("th", {}, h)));
  const body = el("tbody", {}, ...alerts.map((a) => el("tr", { "data-alert": a.id },
    el("td", {}, when(a.firedAt)), el("td", {}, el("span", { class: `alert-badge alert-${a.level}` }, a.level)),
    el("td", {}, el("strong", {}, a.title), a.late ? el("span", { class: "kind" }, "late") : null, a.text ? el("div", { class: "muted" }, a.text) : null),
    el("td", {}, a.ruleName), el("td", {}, el("a", { href: `#/exp/${a.experimentId}` }, (a.runId || a.experimentId).slice(0, 8))),
    el("td", {}, a.resolvedAt === null ? "open" : a.resolvedAt === a.firedAt ? "event" : `resolved ${when(a.resolvedAt)}`),
    el("td", {}, (a.deliveries || []).map((d) => `${d.event}: ${d.status}${d.attempts > 1 ? ` (${d.attempts} tries)` : ""}`).join(", ")))));
  return el("table", { class: "grid" }, el("thead", {}, head), body);
}

function ruleForm(namespace, experimentId, reload, status) {
  const field = (label, input) => el("label", {}, label, input);
  const kind = el("select", { name: "kind" }, ...Object.keys(KINDS).map((k) => el("option", { value: k }, k)));
  const params = el("textarea", { name: "params", rows: 2 }, JSON.stringify(KINDS.nonfinite));
  kind.addEventListener("change", () => { params.value = JSON.stringify(KINDS[kind.value]); });
  const ns = el("input", { name: "namespace", value: namespace || "", placeholder: "namespace", required: true });
  const ws = el("input", { name: "workspace", placeholder: "workspace (all)" });
  const name = el("input", { name: "name", placeholder: "name" });
  const url = el("input", { name: "url", type: "url", placeholder: "https://hooks.slack.com/…", required: true, size: 40 });
  const format = el("select", { name: "format" }, ...["generic", "slack", "discord"].map((f) => el("option", { value: f }, f)));
  const secret = el("input", { name: "secret", type: "password", placeholder: "HMAC secret (generic)", autocomplete: "off" });
  const form = el("form", { class: "alert-form", id: "alert-rule-form" },
    field("namespace ", ns), field("workspace ", ws), field("name ", name), field("kind ", kind), field("params ", params),
    field("webhook ", url), field("format ", format), field("secret ", secret), el("button", { type: "submit" }, "add rule"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const rule = { namespace: ns.value.trim(), kind: kind.value, params: JSON.parse(params.value || "{}"),
        webhook: { url: url.value.trim(), format: format.value, ...(secret.value ? { secret: secret.value } : {}) } };
      if (ws.value.trim()) rule.workspace = ws.value.trim();
      if (name.value.trim()) rule.name = name.value.trim();
      if (experimentId) rule.experimentId = experimentId;
      await api.graphql(`mutation($r: JSON!) { createAlertRule(rule: $r) { id } }`, { r: rule });
      status.textContent = "Rule added.";
      secret.value = "";
      await reload();
    } catch (error) {
      status.textContent = `Could not add the rule: ${error.message}`;
    }
  });
  return form;
}
