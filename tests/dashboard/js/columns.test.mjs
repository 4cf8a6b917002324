// lib/columns.js: the runs table's default columns and the user's choices (shown, pinned, order).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  arrange, defaultShown, emptyPrefs, move, parsePrefs, prefsKey, setPinned, setShown, visibleColumns,
} from "../../../ml_dash/server/static/js/lib/columns.js";
import { tableColumns } from "../../../ml_dash/server/static/js/lib/rows.js";

// A transformers-like run: 170 parameters, a handful of metrics.
const params = Array.from({ length: 170 }, (_, i) => `p${String(i).padStart(3, "0")}`);
const columns = tableColumns({ params: new Set(params), metrics: new Set(["eval/acc", "train/loss", "train/lr", "eval/loss"]) });

test("a wide run defaults to status, name, times, tags, a few varying parameters and the metrics", () => {
  const defaults = defaultShown(columns, ["p010", "p020"]);
  const shown = visibleColumns(columns, emptyPrefs(), defaults).map((c) => c.key);
  assert.deepEqual(shown, ["status", "prefix", "started", "duration", "tags", "param:p010", "param:p020",
    "metric:eval/acc", "metric:eval/loss", "metric:train/loss", "metric:train/lr"]);
  assert.ok(columns.length > 170 && columns.some((c) => c.key === "notes") && columns.some((c) => c.key === "hostname"));
});

test("at most six varying parameters and six metrics by default, losses first", () => {
  const many = tableColumns({ params: new Set(params), metrics: new Set(["a", "b", "c", "d", "e", "f", "g", "z_loss"]) });
  const defaults = defaultShown(many, params);
  const shown = visibleColumns(many, emptyPrefs(), defaults);
  assert.equal(shown.filter((c) => c.kind === "param").length, 6);
  assert.deepEqual(shown.filter((c) => c.kind === "metric").map((c) => c.label), ["a", "b", "c", "d", "e", "z_loss"]);
});

test("show, hide, pin and reorder; pinned columns come first", () => {
  const defaults = defaultShown(columns, []);
  let prefs = setShown(emptyPrefs(), "hostname", true);
  prefs = setShown(prefs, "started", false);
  prefs = setPinned(prefs, "metric:train/loss", true);
  prefs = move(prefs, columns, defaults, "hostname", -1);
  const shown = visibleColumns(columns, prefs, defaults).map((c) => c.key);
  assert.deepEqual(shown.slice(0, 5), ["metric:train/loss", "status", "prefix", "hostname", "duration"]);
  assert.ok(!shown.includes("started"));
  assert.equal(arrange(columns, prefs, defaults)[0].pinned, true);
  prefs = setPinned(prefs, "metric:train/loss", false);
  assert.deepEqual(visibleColumns(columns, prefs, defaults).filter((c) => c.pinned), []);
  assert.ok(visibleColumns(columns, prefs, defaults).some((c) => c.key === "metric:train/loss"));  // still shown
});

test("moving a shown column passes the next shown one, whatever hidden columns lie between", () => {
  const defaults = defaultShown(columns, []);
  let prefs = setShown(emptyPrefs(), "started", false);
  prefs = move(prefs, columns, defaults, "duration", -1);
  assert.deepEqual(visibleColumns(columns, prefs, defaults).map((c) => c.key).slice(0, 4), ["status", "duration", "prefix", "tags"]);
  assert.equal(move(prefs, columns, defaults, "status", -1), prefs);  // already first
});

test("prefs survive a JSON round trip; unreadable text is the defaults", () => {
  const prefs = setPinned(setShown(emptyPrefs(), "notes", true), "prefix", true);
  assert.deepEqual(parsePrefs(JSON.stringify(prefs)), prefs);
  assert.deepEqual(parsePrefs("not json"), emptyPrefs());
  assert.deepEqual(parsePrefs(null), emptyPrefs());
  assert.deepEqual(parsePrefs('{"shown": {"a": "yes"}, "pinned": [1, "b"]}'), { shown: {}, pinned: ["b"], order: [] });
  assert.equal(prefsKey("alice", "vision"), "mlDashColumns:alice/vision");
});
