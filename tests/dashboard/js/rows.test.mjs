// lib/rows.js: flattened parameters, cells and their order, table columns, varying keys, groups.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  cellOf, compareCells, naturalCompare, flatten, groupByPrefix, groupByValue, prepareRow, systemChartGroups, tableColumns, varyingKeys,
} from "../../../ml_dash/server/static/js/lib/rows.js";

test("flatten makes dotted keys; lists, empty objects and nulls are values", () => {
  assert.deepEqual(flatten({ lr: 0.1, model: { layers: 50, act: { name: "relu" } }, tags: [1, 2], empty: {}, none: null }),
    { lr: 0.1, "model.layers": 50, "model.act.name": "relu", tags: [1, 2], empty: {}, none: null });
  assert.deepEqual(flatten(null), {});
});

test("prepareRow and cellOf read every kind of column", () => {
  const row = prepareRow({ id: "e1", status: "COMPLETED", startedAt: 10, completedAt: 70, params: { opt: { lr: 0.5 } },
                           lastMetrics: { loss: 0.25 } });
  assert.equal(cellOf(row, "param:opt.lr"), 0.5);
  assert.equal(cellOf(row, "metric:loss"), 0.25);
  assert.equal(cellOf(row, "metric:acc"), undefined);
  assert.equal(cellOf(row, "started"), 10);
  assert.equal(cellOf(row, "duration"), 60);
  assert.equal(cellOf(row, "status"), "COMPLETED");
  assert.equal(cellOf(prepareRow({ startedAt: 5, status: "RUNNING" }), "duration", 8), 3);
  assert.deepEqual(prepareRow({ id: "x" }).lastMetrics, {});
});

test("compareCells: numbers by value, text naturally, empty cells last either way", () => {
  const values = [10, null, 2, "", 33, undefined];
  assert.deepEqual([...values].sort((a, b) => compareCells(a, b, false)), [2, 10, 33, null, "", undefined]);
  assert.deepEqual([...values].sort((a, b) => compareCells(a, b, true)), [33, 10, 2, null, "", undefined]);
  assert.deepEqual(["run10", "run9", "Run1"].sort((a, b) => compareCells(a, b, false)), ["Run1", "run9", "run10"]);
});

test("tableColumns: built-ins (tags and notes included), then sorted parameters and metrics", () => {
  const columns = tableColumns({ params: new Set(["z", "a.b"]), metrics: new Set(["loss", "acc"]) });
  assert.deepEqual(columns.map((c) => c.key), ["status", "prefix", "started", "duration", "hostname", "tags", "notes",
    "param:a.b", "param:z", "metric:acc", "metric:loss"]);
  assert.deepEqual(columns[7], { key: "param:a.b", label: "a.b", kind: "param" });
});

test("varyingKeys: the parameters that differ between runs, missing counting as a value", () => {
  const runs = [{ flatParams: { lr: 1, seed: 0, bs: 32 } }, { flatParams: { lr: 2, seed: 0, bs: 32 } }, { flatParams: { lr: 1, seed: 0 } }];
  assert.deepEqual(varyingKeys(runs), ["bs", "lr"]);
  assert.deepEqual(varyingKeys([runs[0]]), []);
});

test("groupByPrefix: undotted keys first, groups sorted, order kept inside a group", () => {
  assert.deepEqual(groupByPrefix(["val.loss", "train.b", "lr", "train.a", "epoch"]),
    [["", ["lr", "epoch"]], ["train", ["train.b", "train.a"]], ["val", ["val.loss"]]]);
});

test("groupByPrefix: '/'-separated names (train/loss, the transformers convention) group like dotted ones", () => {
  assert.deepEqual(groupByPrefix(["train/loss", "eval/loss", "train/learning_rate", "epoch", "val.acc"]),
    [["", ["epoch"]], ["eval", ["eval/loss"]], ["train", ["train/loss", "train/learning_rate"]], ["val", ["val.acc"]]]);
});

test("naturalCompare: digit runs by value (epoch_5 before epoch_10)", () => {
  assert.deepEqual(["ckpt/epoch_10.pt", "ckpt/epoch_5.pt", "a.txt", "ckpt/epoch_100.pt", "ckpt/epoch_9.pt"].sort(naturalCompare),
    ["a.txt", "ckpt/epoch_5.pt", "ckpt/epoch_9.pt", "ckpt/epoch_10.pt", "ckpt/epoch_100.pt"]);
});

test("groupByValue: runs by a parameter's value, in order of appearance", () => {
  const rows = [{ flatParams: { opt: "sgd" } }, { flatParams: { opt: "adam" } }, { flatParams: { opt: "sgd" } }, { flatParams: {} }];
  assert.deepEqual(groupByValue(rows, "opt"), [
    { value: "sgd", members: [0, 2] }, { value: "adam", members: [1] }, { value: null, members: [3] },
  ]);
});

test("systemChartGroups: known series together in a fixed order, unknown ones alone", () => {
  const groups = systemChartGroups(["system/gpu.1.power_w", "system/new_reading", "system/memory_used_mb", "system/cpu_percent",
    "system/process_cpu_percent", "system/gpu.0.power_w", "system/process_rss_mb"]);
  assert.deepEqual(groups, [
    { title: "Machine CPU % (all CPUs)", names: ["system/cpu_percent"] },
    { title: "Process CPU % (100 = one CPU)", names: ["system/process_cpu_percent"] },
    { title: "Process memory, RSS (MiB)", names: ["system/process_rss_mb"] },
    { title: "Machine memory (MiB)", names: ["system/memory_used_mb"] },
    { title: "GPU power (W)", names: ["system/gpu.0.power_w", "system/gpu.1.power_w"] },
    { title: "new_reading", names: ["system/new_reading"] },
  ]);
  assert.deepEqual(systemChartGroups([]), []);
  // Counts get whole-number ticks; nothing else does.
  assert.deepEqual(systemChartGroups(["system/process_threads", "system/cpu_percent"]).map((g) => [g.title, !!g.integer]),
    [["Machine CPU % (all CPUs)", false], ["Threads", true]]);
});

test("prepareRow shapes metricSummary into summary.<metric>.<stat> keys that cellOf and summaryColumns read", async () => {
  const { cellOf, prepareRow, summaryColumns } = await import("../../../ml_dash/server/static/js/lib/rows.js");
  const row = prepareRow({ id: "e1", params: {}, lastMetrics: { "train.loss": 0.2 }, metricSummary: [
    { name: "train.loss", last: 0.2, min: 0.15, max: 2.3, count: 60 }, { name: "acc", last: "NaN", min: null, max: null, count: 1 }] });
  assert.deepEqual(row.summary, { "train.loss.last": 0.2, "train.loss.min": 0.15, "train.loss.max": 2.3,
                                  "acc.last": "NaN", "acc.min": null, "acc.max": null });
  assert.equal(cellOf(row, "summary:train.loss.min"), 0.15);
  assert.equal(cellOf(row, "summary:train.loss.max"), 2.3);
  assert.equal(cellOf(row, "summary:nope.min"), undefined);
  assert.deepEqual(prepareRow({ id: "e2" }).summary, {});  // a query that did not ask for it
  assert.deepEqual(summaryColumns(new Set(["train.loss"])).map((c) => [c.key, c.label]), [
    ["summary:train.loss.last", "train.loss (last)"], ["summary:train.loss.min", "train.loss (min)"],
    ["summary:train.loss.max", "train.loss (max)"]]);
});
