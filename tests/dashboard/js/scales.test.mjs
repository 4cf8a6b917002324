// lib/scales.js: palette, ramp, numeric scales, colouring by a parameter, parallel-coordinates axes.
import assert from "node:assert/strict";
import { test } from "node:test";

import { niceTicks, axisFor, categoricalColor, colorBy, numericScale, rampColor } from "../../../ml_dash/server/static/js/lib/scales.js";

test("categoricalColor: the palette, then distinct hues", () => {
  assert.equal(categoricalColor(0), "#4e79a7");
  assert.equal(categoricalColor(19), "#aec7e8");
  assert.match(categoricalColor(20), /^hsl\(\d+(\.\d+)?, 60%, 45%\)$/);
  assert.notEqual(categoricalColor(20), categoricalColor(21));
});

test("rampColor: the ends, the middle, clamping and grey for no value", () => {
  assert.equal(rampColor(0), "rgb(68, 1, 84)");
  assert.equal(rampColor(1), "rgb(253, 231, 37)");
  assert.equal(rampColor(0.5), "rgb(33, 145, 140)");
  assert.equal(rampColor(7), rampColor(1));
  assert.equal(rampColor(null), "#999999");
  assert.equal(rampColor(NaN), "#999999");
});

test("numericScale: linear, log across orders of magnitude, none without numbers", () => {
  const linear = numericScale([0, 5, 10, "x", null]);
  assert.equal(linear.log, false);
  assert.equal(linear.at(5), 0.5);
  assert.equal(linear.at("5"), null);
  const log = numericScale([0.0001, 0.01, 1]);
  assert.equal(log.log, true);
  assert.ok(Math.abs(log.at(0.01) - 0.5) < 1e-12);
  assert.equal(numericScale([3, 3]).at(3), 0.5);
  assert.equal(numericScale(["a", null]), null);
});

test("colorBy: the palette per run without a key, a ramp for numbers, the palette per value otherwise", () => {
  const runs = [{ flatParams: { lr: 1, opt: "sgd" } }, { flatParams: { lr: 3, opt: "adam" } }, { flatParams: { lr: 2, opt: "sgd" } }];
  assert.equal(colorBy(runs, "").colorOf(runs[1]), categoricalColor(1));
  const byLr = colorBy(runs, "lr");
  assert.equal(byLr.colorOf(runs[0]), rampColor(0));
  assert.equal(byLr.colorOf(runs[2]), rampColor(0.5));
  assert.deepEqual(byLr.legend, [["lr = 1", rampColor(0)], ["lr = 2", rampColor(0.5)], ["lr = 3", rampColor(1)]]);
  const byOpt = colorBy(runs, "opt");
  assert.equal(byOpt.colorOf(runs[0]), byOpt.colorOf(runs[2]));
  assert.deepEqual(byOpt.legend, [['opt = adam', categoricalColor(0)], ['opt = sgd', categoricalColor(1)]]);
});

test("axisFor: numeric axes span the values, categorical ones space the sorted values evenly", () => {
  const numeric = axisFor("lr", [1, 3.5, null]);
  assert.deepEqual([numeric.numeric, numeric.ticks, numeric.at(2.25)], [true, [1, 1.5, 2, 2.5, 3, 3.5], 0.5]);
  assert.deepEqual(axisFor("seed", [0, 1]).ticks, [0, 1]);  // whole numbers: whole ticks only
  assert.deepEqual(axisFor("layers", [18, 50, 101]).ticks, [20, 40, 60, 80, 100]);
  const categorical = axisFor("opt", ["sgd", "adam", "rms", null]);
  assert.equal(categorical.numeric, false);
  assert.deepEqual(categorical.ticks, ["adam", "rms", "sgd"]);
  assert.deepEqual(["adam", "rms", "sgd", null].map(categorical.at), [0, 0.5, 1, null]);
  assert.equal(axisFor("one", ["only"]).at("only"), 0.5);
});

test("colorBy: a numeric sweep lists every value in its legend, not only the two ends", async () => {
  const { colorBy } = await import("../../../ml_dash/server/static/js/lib/scales.js");
  const runs = [0.001, 0.01, 0.1, 0.01].map((lr) => ({ flatParams: { lr } }));
  const { legend, colorOf } = colorBy(runs, "lr");
  assert.deepEqual(legend.map(([text]) => text), ["lr = 0.001", "lr = 0.01", "lr = 0.1"]);
  assert.equal(legend[1][1], colorOf(runs[1]));
  const many = Array.from({ length: 100 }, (_, i) => ({ flatParams: { x: i } }));
  assert.equal(colorBy(many, "x").legend.length, 2);
});

test("niceTicks: round numbers inside the range, powers of ten on a log axis", () => {
  assert.deepEqual(niceTicks(0, 100, false), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(12, 101, false), [20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(0.0005, 0.1, true), [0.001, 0.01, 0.1]);
  assert.deepEqual(niceTicks(0.0005, 0.003, true), [0.0005, 0.001, 0.002]);  // 1-2-5 steps when fewer than 3 powers of ten fit
  assert.deepEqual(niceTicks(3, 3, false), [3]);
  assert.deepEqual(niceTicks(0.1, 0.3, false), [0.1, 0.15, 0.2, 0.25, 0.3]);
  assert.deepEqual(niceTicks(0.06, 1.5, false), [0.25, 0.5, 0.75, 1, 1.25, 1.5]);  // not just 0.5 and 1
  const lr = axisFor("lr", [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]);
  assert.deepEqual(lr.ticks, [0.001, 0.01, 0.1]);
  assert.ok(lr.ticks.every((t) => lr.at(t) >= 0 && lr.at(t) <= 1));
});
