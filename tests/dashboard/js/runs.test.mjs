// lib/runs.js: an experiment's runs as segments of one history, the strip's geometry, the fork overlay's address.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  beginsAt, compareHref, hasSuperseded, lineageIds, runSegments, shownRange, stripGeometry,
} from "../../../ml_dash/server/static/js/lib/runs.js";

const run = (id, branchStep, supersededFrom, extra = {}) => ({ id, status: "COMPLETED", startedAt: 1, branchStep, supersededFrom, jobId: null, ...extra });

test("runSegments: a run killed, resumed at 50, then appended to", () => {
  const segments = runSegments([run("r1", null, 50), run("r2", 50, null), run("r3", null, null)]);
  assert.deepEqual(segments.map((s) => [s.id, s.from, s.to, s.appends, s.superseded]),
    [["r1", null, 50, false, false], ["r2", 50, null, false, false], ["r3", null, null, true, false]]);
  assert.deepEqual(segments.map(shownRange), ["steps < 50", "steps ≥ 50", "every step"]);
  assert.deepEqual(segments.map(beginsAt), ["start", "step 50", "appends"]);
});

test("runSegments: a rerun from step 0 supersedes the whole first run", () => {
  const [first, rerun] = runSegments([run("r1", null, 0), run("r2", 0, null)]);
  assert.equal(first.superseded, true);
  assert.equal(shownRange(first), "fully superseded");
  assert.equal(shownRange(rerun), "steps ≥ 0");
  assert.equal(shownRange({ from: 10, to: 40, superseded: false }), "10 ≤ step < 40");
});

test("runSegments: the ranks of one job are one segment, its status the job's", () => {
  const segments = runSegments([
    run("a1", null, 30, { jobId: "j1", rank: 1, status: "CRASHED" }), run("a0", null, 30, { jobId: "j1", rank: 0 }),
    run("b0", 30, null, { jobId: "j2", rank: 0, status: "RUNNING" }), run("b1", 31, null, { jobId: "j2", rank: 1, status: "COMPLETED" }),
  ]);
  assert.equal(segments.length, 2);
  assert.deepEqual(segments.map((s) => [s.id, s.ranks, s.status, s.from, s.to]), [["a0", 2, "CRASHED", null, 30], ["b0", 2, "RUNNING", 30, null]]);
  assert.deepEqual(segments[0].runs.map((r) => r.id), ["a0", "a1"]);
  assert.deepEqual(runSegments(null), []);
});

test("stripGeometry: bars on one step axis, the open-ended one to the right edge", () => {
  const bars = stripGeometry(runSegments([run("r1", null, 0), run("r2", 0, 50), run("r3", 50, null)]));
  assert.deepEqual(bars.map((b) => Math.round(b.left)), [0, 0, 80]);
  assert.deepEqual(bars.map((b) => Math.round(b.width)), [0, 80, 20]);
  assert.deepEqual(stripGeometry(runSegments([run("r1", null, null)])), [{ left: 0, width: 100 }]);
});

test("compareHref and lineageIds: the parent, this experiment, its forks; names encoded", () => {
  const lineage = { parent: { id: "p", fork_step: 49 }, children: [{ id: "c1" }, { id: "c2" }] };
  assert.deepEqual(lineageIds("x", lineage), ["p", "x", "c1", "c2"]);
  assert.deepEqual(lineageIds("x", null), ["x"]);
  assert.equal(compareHref(lineageIds("x", lineage), ["train/loss"]), "#/compare?ids=p,x,c1,c2&metric=train%2Floss");
  assert.equal(compareHref(["a", "a", "b"]), "#/compare?ids=a,b");
});

test("hasSuperseded: only when some run has a cutoff", () => {
  assert.equal(hasSuperseded([run("r1", null, null)]), false);
  assert.equal(hasSuperseded([run("r1", null, 5), run("r2", 5, null)]), true);
  assert.equal(hasSuperseded(undefined), false);
});
