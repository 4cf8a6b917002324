// What every chart view shares: the smoothing / log-y / x-axis controls, EMA smoothing, x-axis transforms, colours.

import { el } from "./util.js";

export const X_MODES = [["step", "x: step"], ["time", "x: wall time"], ["relative", "x: relative time"]];

export function defaultControls() {
  return { smoothing: 0, logY: false, xMode: "step" };
}

// One toolbar for a chart view; onChange(controls, what) gets the whole state and the key that changed.
export function controlsToolbar(controls, onChange) {
  const xSelect = el("select", { id: "x-axis" }, X_MODES.map(([value, label]) => el("option", { value }, label)));
  xSelect.value = controls.xMode;
  xSelect.addEventListener("change", () => { controls.xMode = xSelect.value; onChange(controls, "xMode"); });
  const value = el("span", { class: "muted", id: "smoothing-value" }, controls.smoothing.toFixed(2));
  const slider = el("input", { type: "range", id: "smoothing", min: "0", max: "0.99", step: "0.01", value: String(controls.smoothing),
                               title: "EMA smoothing (the raw line stays faint behind the smoothed one)" });
  slider.addEventListener("input", () => {
    controls.smoothing = Number(slider.value);
    value.textContent = controls.smoothing.toFixed(2);
    onChange(controls, "smoothing");
  });
  const logBox = el("input", { type: "checkbox", id: "log-y" });
  logBox.checked = controls.logY;
  logBox.addEventListener("change", () => { controls.logY = logBox.checked; onChange(controls, "logY"); });
  return el("span", { class: "chart-controls" }, xSelect,
    el("label", { class: "control" }, "smoothing ", slider, " ", value),
    el("label", { class: "control" }, logBox, " log y"));
}

// TensorBoard's debiased exponential moving average: the first points are not pulled towards zero. Gaps (null,
// non-finite) stay gaps and do not reset the average.
export function ema(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !isFinite(v)) { out[i] = null; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - weight ** n);
  }
  return out;
}

// Relative time reads best in the largest unit that still gives a few ticks.
export function relativeUnit(spanSeconds) {
  if (spanSeconds > 2 * 3600) return { seconds: 3600, label: "hours since start" };
  if (spanSeconds > 120) return { seconds: 60, label: "minutes since start" };
  return { seconds: 1, label: "seconds since start" };
}

// Distinct colours for up to ~20 runs (Tableau 10 + a lighter ring), then golden-angle hues.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
  "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8"];

export function categoricalColor(i) {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.508) % 360}, 60%, 45%)`;
}

// Viridis-like ramp for numeric values in [0, 1].
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

export function rampColor(t) {
  if (t === null || t === undefined || !isFinite(t)) return "#999999";
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x)), f = x - i;
  const c = RAMP[i].map((v, k) => Math.round(v + (RAMP[i + 1][k] - v) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

// A numeric parameter spanning orders of magnitude (learning rates) is coloured and plotted on a log scale.
export function numericScale(values) {
  const finite = values.filter((v) => typeof v === "number" && isFinite(v));
  if (!finite.length) return null;
  const lo = Math.min(...finite), hi = Math.max(...finite);
  const log = lo > 0 && hi / lo >= 50;
  const f = log ? Math.log10 : (v) => v;
  const a = f(lo), b = f(hi);
  return { lo, hi, log, at: (v) => (typeof v === "number" && isFinite(v) && (!log || v > 0) ? (b === a ? 0.5 : (f(v) - a) / (b - a)) : null) };
}

// Colour each run by a parameter's value: a ramp for numbers, the palette for anything else. Returns
// {colorOf(run), legend: [[text, colour]...]} where run.flatParams holds the value.
export function colorBy(runs, key) {
  if (!key) return { colorOf: (run) => categoricalColor(runs.indexOf(run)), legend: [] };
  const values = runs.map((r) => r.flatParams[key]);
  const numeric = values.every((v) => v === undefined || v === null || typeof v === "number");
  const scale = numeric ? numericScale(values) : null;
  if (scale) {
    return { colorOf: (run) => rampColor(scale.at(run.flatParams[key])),
             legend: [[`${key} = ${scale.lo}`, rampColor(0)], [`${scale.hi}`, rampColor(1)]] };
  }
  const distinct = [...new Set(values.map((v) => JSON.stringify(v ?? null)))].sort();
  const colour = new Map(distinct.map((v, i) => [v, categoricalColor(i)]));
  return { colorOf: (run) => colour.get(JSON.stringify(run.flatParams[key] ?? null)),
           legend: distinct.map((v) => [`${key} = ${JSON.parse(v)}`, colour.get(v)]) };
}

// Parameter keys whose value is not the same for every run (what a sweep varies).
export function varyingKeys(runs) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.flatParams)))].sort();
  return keys.filter((k) => new Set(runs.map((r) => JSON.stringify(r.flatParams[k] ?? null))).size > 1);
}

const COST_BUDGET = 900_000;  // under graphql_cost.MAX_COST: ids × (100 + 2·maxPoints per point list)

// Buckets per run: one per pixel while the runs are few, fewer as they multiply so the request fits the cost budget
// (1,000 runs → ~200): a bucket keeps its min and max, so a spike still shows at full height either way.
export function bucketsFor(runs, width, withTimes) {
  const lists = withTimes ? 3 : 2;
  return Math.max(10, Math.min(Math.round(width), Math.floor((COST_BUDGET / Math.max(1, runs) - 110) / (2 * lists))));
}
