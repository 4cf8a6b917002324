// Pure colour and axis scales: the categorical palette, a viridis-like ramp, numeric (linear or log) scales,
// colouring runs by a parameter, and the parallel-coordinates axes.
// No DOM, storage or network here (tests/dashboard/js/scales.test.mjs runs it under Node).

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
// Returns {lo, hi, log, at(v) → [0, 1] or null}, or null without a finite number.
export function numericScale(values) {
  const finite = values.filter((v) => typeof v === "number" && isFinite(v));
  if (!finite.length) return null;
  const lo = Math.min(...finite), hi = Math.max(...finite);
  const log = lo > 0 && hi / lo >= 50;
  const f = log ? Math.log10 : (v) => v;
  const a = f(lo), b = f(hi);
  return { lo, hi, log, at: (v) => (typeof v === "number" && isFinite(v) && (!log || v > 0) ? (b === a ? 0.5 : (f(v) - a) / (b - a)) : null) };
}

const MAX_LEGEND = 24;  // legend entries before a numeric legend shows only its two ends

// Colour each run by a parameter's value: a ramp for numbers, the palette for anything else. Returns
// {colorOf(run), legend: [[text, colour]...]} where run.flatParams holds the value.
export function colorBy(runs, key) {
  if (!key) return { colorOf: (run) => categoricalColor(runs.indexOf(run)), legend: [] };
  const values = runs.map((r) => r.flatParams[key]);
  const numeric = values.every((v) => v === undefined || v === null || typeof v === "number");
  const scale = numeric ? numericScale(values) : null;
  if (scale) {
    const colorOf = (run) => rampColor(scale.at(run.flatParams[key]));
    // A sweep's few values (lr 0.001, 0.01, 0.1) each get a legend entry; only a near-continuous spread shows ends.
    const distinct = [...new Set(values.filter((v) => typeof v === "number" && isFinite(v)))].sort((a, b) => a - b);
    const legend = distinct.length <= MAX_LEGEND
      ? distinct.map((v) => [`${key} = ${v}`, rampColor(scale.at(v))])
      : [[`${key} = ${scale.lo}`, rampColor(0)], [`${scale.hi}`, rampColor(1)]];
    return { colorOf, legend };
  }
  const distinct = [...new Set(values.map((v) => JSON.stringify(v ?? null)))].sort();
  const colour = new Map(distinct.map((v, i) => [v, categoricalColor(i)]));
  return { colorOf: (run) => colour.get(JSON.stringify(run.flatParams[key] ?? null)),
           legend: distinct.map((v) => [`${key} = ${JSON.parse(v)}`, colour.get(v)]) };
}

// An axis over the runs' values: numeric (linear, or log across orders of magnitude) or categorical (evenly spaced,
// sorted). Returns {key, numeric, ticks, at(v) → [0, 1] or null}.
export function axisFor(key, values) {
  const numeric = values.some((v) => typeof v === "number") && values.every((v) => v === undefined || v === null || typeof v === "number");
  if (numeric) {
    const scale = numericScale(values);
    // Whole-number parameters (seeds, layers, batch sizes) get whole-number ticks: no "0.2" of a seed.
    const whole = values.every((v) => typeof v !== "number" || Number.isInteger(v));
    let ticks = niceTicks(scale.lo, scale.hi, scale.log);
    if (whole) ticks = scale.hi - scale.lo <= 10 && !scale.log ? Array.from({ length: scale.hi - scale.lo + 1 }, (_, i) => scale.lo + i) : ticks.filter(Number.isInteger);
    return { key, numeric: true, at: scale.at, ticks };
  }
  const distinct = [...new Set(values.filter((v) => v !== undefined && v !== null).map((v) => JSON.stringify(v)))].sort();
  return { key, numeric: false, ticks: distinct.map((v) => JSON.parse(v)),
           at: (v) => (v === undefined || v === null ? null : distinct.length < 2 ? 0.5 : distinct.indexOf(JSON.stringify(v)) / (distinct.length - 1)) };
}

const clean = (v) => Number(v.toPrecision(12));  // 3 * 0.1 → 0.3, not 0.30000000000000004

// Round tick values inside [lo, hi]: about five steps of 1, 2, 2.5 or 5 × 10^k on a linear axis; powers of ten on
// a log axis (1-2-5 steps when fewer than three powers fit).
export function niceTicks(lo, hi, log) {
  if (!(hi > lo)) return [lo];
  if (log) {
    const ticks = [];
    for (const mantissas of [[1], [1, 2, 5]]) {
      ticks.length = 0;
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        for (const m of mantissas) { const v = clean(m * 10 ** e); if (v >= lo && v <= hi) ticks.push(v); }
      }
      if (ticks.length >= 3) break;
    }
    return ticks.length ? ticks : [lo, hi];
  }
  const raw = (hi - lo) / 5, power = 10 ** Math.floor(Math.log10(raw));
  const steps = [0.5, 1, 2, 2.5, 5, 10].map((m) => m * power);
  let index = steps.findIndex((s) => s >= raw * (1 - 1e-9));
  for (;;) {  // at least four ticks: with a step that fits ~5 times the span, the ends may not land on round values
    const step = steps[index], ticks = [];
    for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) ticks.push(clean(i * step));
    if (ticks.length >= 4 || index === 0) return ticks;
    index--;
  }
}
