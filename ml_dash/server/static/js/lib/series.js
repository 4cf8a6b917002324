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
// Runs rarely log at the same steps (every 10 steps here, every 25 there; a min/max envelope's points fall where each
// bucket's extremes were), so a column one run has no point in takes that run's value interpolated between its
// neighbouring points: the mean has no holes where the runs interleave. A run counts only within its own x range
// (no extrapolation: a shorter run does not drag the mean past its last point). A run with points in a column
// reduces to its own mean there (more points do not weigh more), while min and max take every point (a spike in any
// run widens the band). Returns {xs, mean, lo, hi}, with null where no run covers a column.
export function groupEnvelope(runs, x0, x1, bins) {
  const xs = Array.from({ length: bins }, (_, b) => (bins > 1 ? x0 + ((x1 - x0) * b) / (bins - 1) : x0));
  const sum = new Float64Array(bins), count = new Float64Array(bins);
  const lo = new Array(bins).fill(null), hi = new Array(bins).fill(null);
  const runSum = new Float64Array(bins), runCount = new Float64Array(bins);
  const take = (b, v) => {
    if (lo[b] === null || v < lo[b]) lo[b] = v;
    if (hi[b] === null || v > hi[b]) hi[b] = v;
  };
  const column = (x) => (bins > 1 && x1 > x0 ? Math.min(bins - 1, Math.max(0, Math.floor(((x - x0) / (x1 - x0)) * (bins - 1) + 0.5))) : 0);
  for (const run of runs) {
    const points = [];
    run.values.forEach((v, i) => {
      const x = run.xs[i];
      if (x !== null && x !== undefined && v !== null && v !== undefined && isFinite(v) && isFinite(x)) points.push([x, v]);
    });
    if (!points.length) continue;
    points.sort((a, b) => a[0] - b[0]);
    for (const [x, v] of points) { const b = column(x); runSum[b] += v; runCount[b]++; take(b, v); }
    const first = points[0][0], last = points[points.length - 1][0];
    let j = 0;
    for (let b = 0; b < bins; b++) {
      if (runCount[b]) { sum[b] += runSum[b] / runCount[b]; count[b]++; runSum[b] = 0; runCount[b] = 0; continue; }
      const x = xs[b];
      if (x < first || x > last) continue;
      while (j < points.length - 2 && points[j + 1][0] < x) j++;
      const [xa, va] = points[j], [xb, vb] = points[Math.min(j + 1, points.length - 1)];
      const v = xb > xa ? va + ((x - xa) * (vb - va)) / (xb - xa) : va;
      sum[b] += v; count[b]++; take(b, v);
    }
  }
  const mean = Array.from(sum, (s, b) => (count[b] ? s / count[b] : null));
  return { xs, mean, lo, hi };
}

const quantile = (sorted, q) => {
  const at = (sorted.length - 1) * q, i = Math.floor(at);
  return i + 1 < sorted.length ? sorted[i] + (at - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
};

// The narrowest [low, high] holding whole bodies ([lo, hi] intervals) of a majority of them; all of them when two.
function majorityCore(bodies) {
  const need = Math.floor(bodies.length / 2) + 1;
  const byLow = [...bodies].sort((a, b) => b[0] - a[0]);  // highest low first
  const highs = [];  // the `need` smallest highs of the bodies seen so far, ascending
  let best = null;
  for (const [low, high] of byLow) {
    let at = 0;
    while (at < highs.length && highs[at] < high) at++;
    highs.splice(at, 0, high);
    if (highs.length > need) highs.pop();
    if (highs.length === need && (!best || highs[need - 1] - low < best[1] - best[0])) best = [low, highs[need - 1]];
  }
  return best;
}

// The default y range of a chart of several traces, robust to a run that diverged: one loss at 1e6 must not flatten
// the other runs into a line at the bottom. Each trace's body is its [q, 1 - q] quantiles (1st-99th percentile: a
// one-step spike is not its body); the core is the narrowest interval holding the bodies of a majority of traces, so
// a minority of traces, even one that spent half its run at 1e6, cannot widen it. A value is an outlier only when it
// lies more than `fence` core spans outside the core AND more than `magnitude` times the core's own size from zero
// (so traces of different scales, memory used and memory free, are never cut); every other value is kept whole (the
// first steps' high loss, a sweep's slower runs). The range is the kept values' [min, max], padded by `pad` of its
// span. Nothing is an outlier → the full padded range, as before.
// traces: arrays of y values (null / non-finite skipped). Returns {range: [low, high], clipped: values left out}, or
// null without any finite value.
export function robustRange(traces, { q = 0.01, fence = 3, magnitude = 10, pad = 0.04 } = {}) {
  const bodies = [], all = [];
  for (const ys of traces) {
    const finite = ys.filter((v) => v !== null && v !== undefined && isFinite(v)).sort((a, b) => a - b);
    if (!finite.length) continue;
    bodies.push([quantile(finite, q), quantile(finite, 1 - q)]);
    for (const v of finite) all.push(v);
  }
  if (!all.length) return null;
  const [coreLo, coreHi] = majorityCore(bodies);
  const span = coreHi - coreLo || Math.abs(coreHi) * 0.1 || 1;
  const size = magnitude * Math.max(Math.abs(coreLo), Math.abs(coreHi), span);
  const outlier = (v) => (v < coreLo - fence * span || v > coreHi + fence * span) && Math.abs(v) > size;
  let low = Infinity, high = -Infinity, clipped = 0;
  for (const v of all) {
    if (outlier(v)) { clipped++; continue; }
    if (v < low) low = v;
    if (v > high) high = v;
  }
  const room = (high - low) * pad || Math.abs(low) * 0.1 || 1;
  return { range: [low - room, high + room], clipped };
}

// The y range a chart draws: "robust" (robustRange, the default), "full" (every value), or "manual" ({min, max} as
// typed; a side left empty follows the full range). Returns [low, high] or null (no finite value).
export function yRangeOf(traces, { mode = "robust", min = null, max = null } = {}) {
  if (mode === "robust") { const found = robustRange(traces); return found && found.range; }
  const full = robustRange(traces, { fence: Infinity });  // nothing is an outlier
  if (mode === "full") return full && full.range;
  const low = min ?? (full ? full.range[0] : null), high = max ?? (full ? full.range[1] : null);
  return low === null || high === null || !(low < high) ? (full && full.range) : [low, high];
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
