// lib/media.js: slider steps, the strip, heatmap pixels and table pages.
import assert from "node:assert/strict";
import { test } from "node:test";

import { evenSteps, heatColor, heatmapPixels, nearestStep, tablePage } from "../../../ml_dash/server/static/js/lib/media.js";

test("evenSteps: first and last included, evenly spread, all when few", () => {
  assert.deepEqual(evenSteps([0, 10, 20], 8), [0, 10, 20]);
  assert.deepEqual(evenSteps([...Array(101).keys()], 5), [0, 25, 50, 75, 100]);
});

test("nearestStep: the closest logged step, ties to the earlier", () => {
  const steps = [0, 10, 20, 40];
  assert.equal(nearestStep(steps, 14), 10);
  assert.equal(nearestStep(steps, 15), 10);
  assert.equal(nearestStep(steps, 31), 40);
  assert.equal(nearestStep(steps, -5), 0);
  assert.equal(nearestStep(steps, 99), 40);
  assert.equal(nearestStep([], 3), null);
});

test("heatColor: the ends of the scale, clamped", () => {
  assert.deepEqual(heatColor(0), [13, 8, 135]);
  assert.deepEqual(heatColor(1), [240, 249, 33]);
  assert.deepEqual(heatColor(7), heatColor(1));
});

test("heatmapPixels: one pixel column per column, the lowest bin at the bottom, the largest value brightest", () => {
  const pixels = heatmapPixels([[1, 0], [0, 0.25]], 2);
  assert.equal(pixels.length, 2 * 2 * 4);
  assert.deepEqual([...pixels.slice(8, 11)], [240, 249, 33]);  // x=0, bottom row: the value 1
  assert.deepEqual([...pixels.slice(0, 3)], [13, 8, 135]);  // x=0, top row: 0
});

test("tablePage: pages of rows, clamped", () => {
  const rows = [...Array(25).keys()];
  assert.deepEqual(tablePage(rows, 2, 10), { rows: [20, 21, 22, 23, 24], page: 2, pages: 3 });
  assert.equal(tablePage(rows, 9, 10).page, 2);
  assert.deepEqual(tablePage([], 0, 10), { rows: [], page: 0, pages: 1 });
});
