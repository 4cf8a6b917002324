// Pure formatting: numbers, parameter values, times, durations, byte sizes, axis time labels, Plotly-safe text.
// No DOM, storage or network here (tests/dashboard/js/format.test.mjs runs it under Node).

function formatNumber(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "boolean") return String(value);
  if (typeof value !== "number") return String(value);  // "NaN" / "Infinity" arrive as text
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(5)));
}

// A value as the table, the parameters and the tooltips show it: numbers by formatNumber, null (a None) as "null",
// nothing for a missing value, anything else as JSON.
export function formatValue(value) {
  if (value === undefined) return "";
  if (value === null) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return formatNumber(value);
}

const pad2 = (n) => String(n).padStart(2, "0");

// Seconds since the epoch → "YYYY-MM-DD HH:MM:SS" in the browser's time zone; "" for none.
export function formatTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

// "0.4 s", "12 s", "2 min 05 s", "3 h 07 min": a run shorter than a second keeps two significant digits.
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  seconds = Math.max(0, seconds);
  if (seconds > 0 && seconds < 0.995) return `${Number(seconds.toPrecision(2))} s`;
  seconds = Math.round(seconds);
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h} h ${pad2(m)} min`;
  if (m) return `${m} min ${pad2(s)} s`;
  return `${s} s`;
}

export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// An experiment's running time in seconds: up to now while RUNNING, else to its completion; null before it started.
export function durationOf(exp, now = Date.now() / 1000) {
  if (!exp.startedAt) return null;
  const end = exp.status === "RUNNING" ? now : (exp.completedAt || exp.startedAt);
  return end - exp.startedAt;
}

// A wall-time axis tick: the day past two days of span, else the time of day.
export function timeLabel(seconds, span) {
  const d = new Date(seconds * 1000);
  return span > 2 * 86400 ? `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}` : `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

// Plotly reads the text it draws (trace names, axis titles, hover labels) as a subset of HTML: <a href>, <b>, <br>,
// <span style>... A prefix or metric name is the user's text, not markup: escape it before it reaches Plotly (which
// turns the entities back into the characters they stand for).
export function plotlyText(text) {
  // Only these three: a tag cannot start without "<", and Plotly would print other entities as typed.
  return String(text ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// An axis tick in at most ~6 characters: SI prefixes past a thousand (1.5k, 2M, 1T), plain numbers otherwise, so a
// tick of 1e12 is never cut to "00000000" by the axis margin.
const SI = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

export function siTick(value) {
  if (value === null || value === undefined || !isFinite(value)) return "";
  const abs = Math.abs(value);
  for (const [size, prefix] of SI) if (abs >= size) return `${Number((value / size).toPrecision(3))}${prefix}`;
  if (abs !== 0 && abs < 1e-3) return value.toExponential(1);
  return String(Number(value.toPrecision(4)));
}
