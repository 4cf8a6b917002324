// lib/series.js: EMA smoothing, interpolation, anchors, request sizes, extents, ticks, nearest points, group envelopes.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  anchorsOf, bucketsFor, constantRange, ema, extent, groupEnvelope, interpolate, nearestIndex, niceTicks, relativeUnit, toMillis,
} from "../../../ml_dash/server/static/js/lib/series.js";

const close = (actual, expected, eps = 1e-12) => assert.ok(Math.abs(actual - expected) < eps, `${actual} != ${expected}`);

test("ema without weight returns the series itself", () => {
  const values = [1, 2, 3];
  assert.equal(ema(values, 0), values);
});

test("ema is debiased: a constant series stays constant from the first point", () => {
  for (const v of ema([5, 5, 5, 5], 0.9)) close(v, 5);
});

test("ema matches the debiased recurrence", () => {
  const w = 0.5;
  const [a, b, c] = ema([0, 4, 8], w);
  close(a, 0);
  // The running averages are 0, 2 and 5; each is divided by 1 - w^n.
  close(b, 2 / (1 - w ** 2));
  close(c, 5 / (1 - w ** 3));
});

test("ema keeps gaps as gaps without resetting the average", () => {
  const out = ema([2, null, NaN, 2, Infinity], 0.8);
  assert.deepEqual([out[1], out[2], out[4]], [null, null, null]);
  close(out[0], 2);
  close(out[3], 2);  // the second finite point of a constant series
});

test("relativeUnit picks seconds, minutes or hours by span", () => {
  assert.equal(relativeUnit(60).seconds, 1);
  assert.equal(relativeUnit(121).label, "minutes since start");
  assert.equal(relativeUnit(3 * 3600).seconds, 3600);
});

test("bucketsFor: a pixel each for few runs, fewer for many, never under 10", () => {
  assert.equal(bucketsFor(1, 800.4, false), 800);
  assert.equal(bucketsFor(1000, 800, false), Math.floor((900 - 110) / 4));  // 197
  assert.equal(bucketsFor(1000, 800, true), Math.floor((900 - 110) / 6));  // times are a third list
  assert.equal(bucketsFor(1e6, 800, false), 10);
  assert.equal(bucketsFor(0, 300, false), 300);
});

test("interpolate: between, past both ends, single anchor, none", () => {
  const xs = [0, 10, 20], ys = [100, 200, 400];
  assert.equal(interpolate(xs, ys, 5), 150);
  assert.equal(interpolate(xs, ys, 15), 300);
  assert.equal(interpolate(xs, ys, 10), 200);
  assert.equal(interpolate(xs, ys, -10), 0);  // extended along the first segment
  assert.equal(interpolate(xs, ys, 30), 600);  // and the last
  assert.equal(interpolate([3], [7], 100), 7);
  assert.equal(interpolate([], [], 1), null);
  assert.equal(interpolate(xs, ys, null), null);
});

test("anchorsOf keeps increasing steps that have a time", () => {
  const answer = { steps: [0, 1, 1, null, 2, 3], times: [10, 11, 12, 13, null, 14] };
  assert.deepEqual(anchorsOf(answer), { steps: [0, 1, 3], timestamps: [10, 11, 14] });
  assert.deepEqual(anchorsOf({ steps: [1, 2] }), { steps: [], timestamps: [] });
});

test("toMillis reads Plotly's UTC date text", () => {
  assert.equal(toMillis(1234), 1234);
  assert.equal(toMillis("2024-01-02 03:04:05"), Date.UTC(2024, 0, 2, 3, 4, 5));
  assert.equal(toMillis("2024-01-02 03:04:05.5"), Date.UTC(2024, 0, 2, 3, 4, 5, 500));
});

test("constantRange centres a constant series and ignores varying ones", () => {
  assert.deepEqual(constantRange([4, 4], [4, 4]), [2, 6]);
  assert.deepEqual(constantRange([0], [0]), [-1, 1]);
  assert.equal(constantRange([1, 2], [3, 4]), null);
  assert.equal(constantRange([null], [null]), null);
});

test("extent spans every point with both coordinates, padded 4% in y", () => {
  const box = extent([{ xs: [0, 1, 2], ys: [10, null, 20] }, { xs: [null, 5], ys: [1000, 15] }]);
  assert.deepEqual(box.x, [0, 5]);
  close(box.y[0], 10 - 0.4);
  close(box.y[1], 20 + 0.4);
  assert.deepEqual(extent([]), { x: [0, 1], y: [-0.04, 1.04] });
  const flat = extent([{ xs: [3], ys: [50] }]);
  assert.deepEqual(flat.x, [2, 4]);
  assert.deepEqual(flat.y, [45, 55]);
});

test("niceTicks are round numbers covering the range", () => {
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(-0.3, 0.3, 3), [-0.2, 0, 0.2]);
  assert.deepEqual(niceTicks(1, 99, 2), [50]);
});

test("nearestIndex finds the point closest to a pixel column", () => {
  const xs = [0, 10, 20, 30], px = (x) => x * 2;
  assert.equal(nearestIndex(xs, 0, px), 0);
  assert.equal(nearestIndex(xs, 24, px), 1);
  assert.equal(nearestIndex(xs, 31, px), 2);
  assert.equal(nearestIndex(xs, 1000, px), 3);
});

test("groupEnvelope averages per-run means per column, with the min-max band over every point", () => {
  // Two runs on [0, 2] with 3 columns: run A has two points in column 0 (1 and 3: its own mean is 2).
  const runs = [
    { xs: [0, 0.2, 1, 2], values: [1, 3, 10, 100] },
    { xs: [0, 1], values: [4, 20] },
  ];
  const { xs, mean, lo, hi } = groupEnvelope(runs, 0, 2, 3);
  assert.deepEqual(xs, [0, 1, 2]);
  assert.deepEqual(mean, [3, 15, 100]);  // (2 + 4) / 2: run A does not weigh double for having two points
  assert.deepEqual(lo, [1, 10, 100]);
  assert.deepEqual(hi, [4, 20, 100]);
});

test("groupEnvelope skips gaps and leaves empty columns null", () => {
  const { mean, lo, hi } = groupEnvelope([{ xs: [0, null, 4], values: [1, 5, NaN] }], 0, 4, 3);
  assert.deepEqual(mean, [1, null, null]);
  assert.deepEqual(lo, [1, null, null]);
  assert.deepEqual(hi, [1, null, null]);
});

test("placeOf: steps stay; a series without steps is placed by log order, spread over its stored points", async () => {
  const { placeOf } = await import("../../../ml_dash/server/static/js/lib/series.js");
  assert.deepEqual(placeOf([3, null, 7], 3), [3, null, 7]);
  assert.deepEqual(placeOf([null, null, null], 3), [0, 1, 2]);
  assert.deepEqual(placeOf([null, null, null], 101), [0, 50, 100]);
  assert.deepEqual(placeOf([], 0), []);
});

test("effectiveXMode: auto is the step with steps, the relative time without", async () => {
  const { effectiveXMode } = await import("../../../ml_dash/server/static/js/lib/series.js");
  assert.equal(effectiveXMode("auto", false), "step");
  assert.equal(effectiveXMode("auto", true), "relative");
  assert.equal(effectiveXMode("time", true), "time");
  assert.equal(effectiveXMode("step", true), "step");
});

test("groupEnvelope: two runs logged at interleaved steps give a mean with no gaps", async () => {
  const { groupEnvelope } = await import("../../../ml_dash/server/static/js/lib/series.js");
  // Run A logs at even steps, run B at odd ones, both y = step (A) and y = step + 10 (B); one column per step.
  const a = { xs: [0, 2, 4, 6, 8, 10], values: [0, 2, 4, 6, 8, 10] };
  const b = { xs: [1, 3, 5, 7, 9], values: [11, 13, 15, 17, 19] };
  const { xs, mean, lo, hi } = groupEnvelope([a, b], 0, 10, 11);
  assert.deepEqual(xs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // Step 0 and 10 lie outside B's range [1, 9]: no extrapolation, A alone. Inside, each run's own or interpolated
  // value: A is x, B is x + 10, so the mean is x + 5 on every column.
  assert.equal(mean[0], 0);
  assert.equal(mean[10], 10);
  for (let x = 1; x <= 9; x++) close(mean[x], x + 5);
  assert.ok(mean.every((m) => m !== null));
  for (let x = 1; x <= 9; x++) { close(lo[x], x); close(hi[x], x + 10); }
  // More columns than either run has points (a chart wider than the runs are long): still no hole.
  const fine = groupEnvelope([a, b], 0, 10, 41);
  assert.ok(fine.mean.every((m) => m !== null), `holes: ${fine.mean}`);
  close(fine.mean[20], 10);  // x = 5: A interpolated (5) and B's own point (15)
});

test("groupEnvelope does not extrapolate a shorter run past its own range", async () => {
  const { groupEnvelope } = await import("../../../ml_dash/server/static/js/lib/series.js");
  const { mean } = groupEnvelope([{ xs: [0, 4], values: [0, 4] }, { xs: [0, 2], values: [100, 100] }], 0, 4, 5);
  assert.deepEqual(mean, [50, 50.5, 51, 3, 4]);
});

test("robustRange keeps a diverged run from flattening the others, and keeps every non-outlier whole", async () => {
  const { robustRange } = await import("../../../ml_dash/server/static/js/lib/series.js");
  const curve = (k) => Array.from({ length: 60 }, (_, i) => 2.3 * Math.exp(-0.05 * i) + 0.1 * k);
  // The fifth run diverges halfway: 30 of its 60 points at 1e6 (10% of all points: no pooled percentile would do).
  const diverged = curve(0).map((v, i) => (i < 30 ? v : 1e6));
  const { range: [low, high], clipped } = robustRange([curve(1), curve(2), curve(3), curve(4), diverged]);
  assert.equal(clipped, 30);
  const values = [curve(1), curve(2), curve(3), curve(4)].flat();
  assert.ok(low < Math.min(...values) && high > Math.max(...values), "the other runs are drawn whole");
  assert.ok(high < 3, `high ${high} stays near the others`);
});

test("robustRange is the full padded range when nothing is an outlier, and null without values", async () => {
  const { robustRange, yRangeOf } = await import("../../../ml_dash/server/static/js/lib/series.js");
  const { range, clipped } = robustRange([[0, 10], [5, null, NaN]]);
  assert.equal(clipped, 0);
  assert.deepEqual(range, [-0.4, 10.4]);
  assert.equal(robustRange([[null], []]), null);
  assert.deepEqual(robustRange([[3, 3]]).range, [2.7, 3.3]);  // constant: widened, not a zero span
  const traces = [[1, 2], [1, 2], [1, 2], [1, 1e6]];
  assert.ok(yRangeOf(traces)[1] < 3);
  assert.ok(yRangeOf(traces, { mode: "full" })[1] > 1e6);
  assert.deepEqual(yRangeOf(traces, { mode: "manual", min: 0, max: 5 }), [0, 5]);
  assert.equal(yRangeOf(traces, { mode: "manual", min: 0, max: null })[0], 0);  // an empty side follows the full range
});

test("robustRange never cuts traces of different scales, nor one of two traces", async () => {
  const { robustRange } = await import("../../../ml_dash/server/static/js/lib/series.js");
  const flat = (v) => Array.from({ length: 20 }, (_, i) => v + i);
  // Memory: process RSS, used and available MiB on one chart.
  assert.equal(robustRange([flat(500), flat(31000), flat(200000)]).clipped, 0);
  assert.equal(robustRange([flat(1), flat(1e6)]).clipped, 0);  // two runs: neither is "the others"
});
