// Pure series maths for the charts: EMA smoothing, step↔time interpolation, request sizes (buckets per run), axis
// extents and ticks, nearest-point search, and the mean/min/max envelope of a group of runs.
// No DOM, storage or network here (tests/dashboard/js/series.test.mjs runs it under Node).

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

const COST_BUDGET = 900_000;  // under graphql_cost.MAX_COST: ids × (100 + 2·maxPoints per point list)

// Buckets per run: one per pixel while the runs are few, fewer as they multiply so the request fits the cost budget
// (1,000 runs → ~200): a bucket keeps its min and max, so a spike still shows at full height either way.
export function bucketsFor(runs, width, withTimes) {
  const lists = withTimes ? 3 : 2;
  return Math.max(10, Math.min(Math.round(width), Math.floor((COST_BUDGET / Math.max(1, runs) - 110) / (2 * lists))));
}

// The (step, time) anchors of a series answer that carries times: strictly increasing steps, pairs without a time
// dropped. They place every point of the run on a wall-time axis.
export function anchorsOf(answer) {
  const steps = [], timestamps = [];
  (answer.steps || []).forEach((step, i) => {
    const t = answer.times ? answer.times[i] : null;
    if (step !== null && t !== null && t !== undefined && (!steps.length || step > steps[steps.length - 1])) {
      steps.push(step); timestamps.push(t);
    }
  });
  return { steps, timestamps };
}

// Piecewise-linear y(x) through sorted anchors xs → ys, extended linearly past both ends; null without anchors.
export function interpolate(xs, ys, x) {
  if (x === null || x === undefined || !xs.length) return null;
  if (xs.length === 1) return ys[0];
  let lo = 0, hi = xs.length - 1;
  if (x <= xs[0]) hi = 1;
  else if (x >= xs[hi]) lo = hi - 1;
  else {
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] <= x) lo = mid; else hi = mid;
    }
  }
  const span = xs[hi] - xs[lo];
  return span ? ys[lo] + ((x - xs[lo]) * (ys[hi] - ys[lo])) / span : ys[lo];
}

// An x of a Plotly date axis (milliseconds, or the UTC "YYYY-MM-DD HH:MM:SS" text it writes ranges as) → milliseconds.
export function toMillis(value) {
  if (typeof value === "number") return value;
  return Date.parse(String(value).replace(" ", "T") + "Z");
}

// A y axis for a constant series: Plotly would give it an arbitrary ±1 range, which reads as "zero"; centre it.
// Returns [low, high], or null when the series' minima and maxima do not all meet at one value.
export function constantRange(mins, maxes) {
  const lows = mins.filter((v) => v !== null && v !== undefined);
  const highs = maxes.filter((v) => v !== null && v !== undefined);
  if (!lows.length || Math.min(...lows) !== Math.max(...highs)) return null;
  const v = lows[0], pad = Math.abs(v) * 0.5 || 1;
  return [v - pad, v + pad];
}

// The box around every (x, y) point with both set, padded by 4% vertically; a degenerate or empty box is widened.
export function extent(series) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const { xs, ys } of series) {
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i], y = ys[i];
      if (x === null || y === null || x === undefined || y === undefined) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  if (!(x0 <= x1)) { x0 = 0; x1 = 1; }
  if (!(y0 <= y1)) { y0 = 0; y1 = 1; }
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const pad = (y1 - y0) * 0.04 || Math.abs(y0) * 0.1 || 1;
  return { x: [x0, x1], y: [y0 - pad, y1 + pad] };
}

// Round tick values (steps of 1, 2 or 5 × a power of ten) covering [lo, hi], about `count` of them.
export function niceTicks(lo, hi, count) {
  const step0 = (hi - lo) / count, magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

// Index of the point whose x is nearest the pointer's pixel column mx (xs ascending, px: x → pixel; nulls are
// skipped by the caller, which also looks at the neighbours).
export function nearestIndex(xs, mx, px) {
  let lo = 0, hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const x = xs[mid];
    if (x === null || px(x) < mx) lo = mid; else hi = mid;
  }
  return Math.abs(px(xs[lo] ?? Infinity) - mx) <= Math.abs(px(xs[hi] ?? Infinity) - mx) ? lo : hi;
}

// A group of runs as the mean of its runs with the min-max band across them, on `bins` columns spanning [x0, x1].
// Each run ([{xs, values}]) first reduces to its own per-column mean (so a run with more points in a column does not
// weigh more), while min and max take every point (so a spike in any run widens the band).
// Returns {xs, mean, lo, hi}, with null where no run has a point.
export function groupEnvelope(runs, x0, x1, bins) {
  const sum = new Float64Array(bins), count = new Float64Array(bins);
  const lo = new Array(bins).fill(null), hi = new Array(bins).fill(null);
  const runSum = new Float64Array(bins), runCount = new Float64Array(bins);
  for (const { xs, values } of runs) {
    const touched = [];
    values.forEach((v, i) => {
      const x = xs[i];
      if (x === null || v === null || !isFinite(v)) return;
      const b = Math.min(bins - 1, Math.max(0, Math.floor(((x - x0) / (x1 - x0)) * (bins - 1) + 0.5)));
      if (!runCount[b]) touched.push(b);
      runSum[b] += v; runCount[b]++;
      if (lo[b] === null || v < lo[b]) lo[b] = v;
      if (hi[b] === null || v > hi[b]) hi[b] = v;
    });
    for (const b of touched) { sum[b] += runSum[b] / runCount[b]; count[b]++; runSum[b] = 0; runCount[b] = 0; }
  }
  const xs = Array.from({ length: bins }, (_, b) => x0 + ((x1 - x0) * b) / (bins - 1));
  const mean = Array.from(sum, (s, b) => (count[b] ? s / count[b] : null));
  return { xs, mean, lo, hi };
}

// A series logged without steps (W&B's habit: timestamp only) answers null steps. Its points are placed by their
// log order instead: position i of `count` stored points (exact while every point came back; a min/max-bucketed
// answer spreads its points over the same range). The server's step-time anchors of such a series map that same
// position to its wall time. Returns the steps themselves when any point has one.
export function placeOf(steps, count) {
  if (!steps.length || steps.some((s) => s !== null && s !== undefined)) return steps;
  if (steps.length >= count || steps.length < 2) return steps.map((_, i) => i);
  return steps.map((_, i) => Math.round((i * (count - 1)) / (steps.length - 1)));
}

// The x axis a chart uses: the chosen one, or for "auto" the step when the series has steps and the relative time
// when it was logged without them.
export function effectiveXMode(mode, stepless) {
  return mode === "auto" ? (stepless ? "relative" : "step") : mode;
}
