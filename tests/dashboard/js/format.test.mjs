// lib/format.js: numbers, values, times, durations, sizes and Plotly-safe text.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  durationOf, formatBytes, formatDuration, formatTime, formatValue, plotlyText, timeLabel,
} from "../../../ml_dash/server/static/js/lib/format.js";

test("formatValue: five significant digits, exponents for the very small and large", () => {
  assert.equal(formatValue(3), "3");
  assert.equal(formatValue(0.123456789), "0.12346");
  assert.equal(formatValue(1 / 3), "0.33333");
  assert.equal(formatValue(0.00001234), "1.234e-5");
  assert.equal(formatValue(1234567.8), "1.235e+6");
  assert.equal(formatValue(0), "0");
  assert.equal(formatValue(-2.5), "-2.5");
  assert.equal(formatValue(true), "true");
  assert.equal(formatValue("NaN"), "NaN");
  assert.equal(formatValue(null), "null");  // a parameter set to None: shown, as JSON writes it
  assert.equal(formatValue({ a: null }), '{"a":null}');
  assert.equal(formatValue(undefined), "");
  assert.equal(formatValue([1, "a"]), '[1,"a"]');
  assert.equal(formatValue({ a: 1 }), '{"a":1}');
});

test("formatTime writes local time; nothing for no time", () => {
  const t = new Date(2024, 1, 3, 4, 5, 6).getTime() / 1000;  // local time, whatever the zone
  assert.equal(formatTime(t), "2024-02-03 04:05:06");
  assert.equal(formatTime(0), "");
  assert.equal(formatTime(null), "");
});

test("formatDuration: tenths below a second, then seconds, minutes, hours", () => {
  assert.equal(formatDuration(0), "0 s");
  assert.equal(formatDuration(0.4), "0.4 s");
  assert.equal(formatDuration(0.04), "0.04 s");
  assert.equal(formatDuration(0.004), "0.004 s");
  assert.equal(formatDuration(0.96), "0.96 s");
  assert.equal(formatDuration(12.3), "12 s");
  assert.equal(formatDuration(59.6), "1 min 00 s");
  assert.equal(formatDuration(125), "2 min 05 s");
  assert.equal(formatDuration(3 * 3600 + 7 * 60 + 9), "3 h 07 min");
  assert.equal(formatDuration(-5), "0 s");
  assert.equal(formatDuration(null), "");
  assert.equal(formatDuration(Infinity), "");
});

test("formatBytes", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KB");
  assert.equal(formatBytes(5 * 1024 * 1024), "5.0 MB");
  assert.equal(formatBytes(3 * 1024 ** 4), "3072.0 GB");
});

test("durationOf: to completion, or to now while running", () => {
  assert.equal(durationOf({ startedAt: 100, completedAt: 160, status: "COMPLETED" }), 60);
  assert.equal(durationOf({ startedAt: 100, status: "RUNNING" }, 130), 30);
  assert.equal(durationOf({ startedAt: 100, status: "FAILED" }), 0);
  assert.equal(durationOf({ startedAt: null }), null);
});

test("timeLabel: time of day, or the day past two days", () => {
  const t = new Date(2024, 4, 6, 7, 8).getTime() / 1000;
  assert.equal(timeLabel(t, 3600), "07:08");
  assert.equal(timeLabel(t, 3 * 86400), "05-06");
});

test("plotlyText escapes the characters Plotly reads as markup", () => {
  assert.equal(plotlyText('<b>a</b> & "q"'), '&lt;b&gt;a&lt;/b&gt; &amp; "q"');
  assert.equal(plotlyText(null), "");
  assert.equal(plotlyText(42), "42");
});

test("siTick keeps large ticks short: SI prefixes, never a clipped run of zeros", async () => {
  const { siTick } = await import("../../../ml_dash/server/static/js/lib/format.js");
  assert.equal(siTick(1e12), "1T");
  assert.equal(siTick(2.5e9), "2.5G");
  assert.equal(siTick(1500), "1.5k");
  assert.equal(siTick(-3e6), "-3M");
  assert.equal(siTick(0.25), "0.25");
  assert.equal(siTick(0), "0");
  assert.equal(siTick(0.00012), "1.2e-4");
  for (const v of [1e12, 123456789, 9.99e14, 0.123456]) assert.ok(siTick(v).length <= 6, siTick(v));
});
