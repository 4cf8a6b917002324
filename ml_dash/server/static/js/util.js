// Shared helpers: the el() DOM builder, formatting, parameter flattening, status badges, cell sorting, the top bar's breadcrumbs and live indicator.

export const LIVE_POLL_MS = 1500;

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Plotly reads the text it draws (trace names, axis titles, hover labels) as a subset of HTML: <a href>, <b>, <br>,
// <span style>... A prefix or metric name is the user's text, not markup: escape it before it reaches Plotly (which
// turns the entities back into the characters they stand for).
export function plotlyText(text) {
  // Only these three: a tag cannot start without "<", and Plotly would print other entities as typed.
  return String(text ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function formatNumber(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "boolean") return String(value);
  if (typeof value !== "number") return String(value);  // "NaN" / "Infinity" arrive as text
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(5)));
}

export function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return formatNumber(value);
}

export function formatTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function durationOf(exp) {
  if (!exp.startedAt) return null;
  const end = exp.status === "RUNNING" ? Date.now() / 1000 : (exp.completedAt || exp.startedAt);
  return end - exp.startedAt;
}

// Nested parameters become dotted keys ("model.layers") so each one can be a column or a filter term.
export function flatten(object, prefix = "", out = {}) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    if (prefix) out[prefix] = object;
    return out;
  }
  for (const [key, value] of Object.entries(object)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) flatten(value, path, out);
    else out[path] = value;
  }
  return out;
}

export function statusBadge(status) {
  const s = status || "none";
  return el("span", { class: `status status-${s}`, "data-status": s },
    s === "RUNNING" ? el("span", { class: "pulse" }) : null, status || "—");
}

const isMissing = (v) => v === null || v === undefined || v === "";

// Sort order for table cells; empty cells always sink to the bottom, whichever the direction.
export function compareCells(a, b, descending) {
  if (isMissing(a) || isMissing(b)) return isMissing(a) - isMissing(b);
  const order = typeof a === "number" && typeof b === "number" ? a - b
    : String(a).localeCompare(String(b), undefined, { numeric: true });
  return descending ? -order : order;
}

export function setBreadcrumbs(...parts) {
  const nav = document.getElementById("breadcrumbs");
  nav.replaceChildren();
  parts.forEach(([text, href], i) => {
    if (i) nav.append(el("span", { class: "sep" }, "/"));
    nav.append(href ? el("a", { href }, text) : el("span", {}, text));
  });
}

export function setLive(on) {
  document.getElementById("live-indicator").hidden = !on;
}
