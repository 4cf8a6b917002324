// lib/filter.js: the filter box's grammar and its translation to the server's experimentPage filter and orderBy.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  combineFilters, parseFilter, serverFilter, serverKey, serverOrder, serverSortable, subtreeFilter, unknownTerms,
} from "../../../ml_dash/server/static/js/lib/filter.js";

const known = (params = [], metrics = []) => ({ params: new Set(params), metrics: new Set(metrics) });

test("parseFilter splits on commas, 'and' and '&&' and reads each operator", () => {
  assert.deepEqual(parseFilter("lr = 0.001, model.layers > 50 and optimizer != sgd && prefix ~ 'res net'"), [
    { key: "lr", op: "=", value: "0.001" },
    { key: "model.layers", op: ">", value: "50" },
    { key: "optimizer", op: "!=", value: "sgd" },
    { key: "prefix", op: "~", value: "res net" },
  ]);
  assert.deepEqual(parseFilter("a>=1, b<=2, c==3, d<4"), [
    { key: "a", op: ">=", value: "1" }, { key: "b", op: "<=", value: "2" },
    { key: "c", op: "==", value: "3" }, { key: "d", op: "<", value: "4" },
  ]);
  assert.deepEqual(parseFilter("  ,  "), []);
});

test("parseFilter rejects a term without an operator", () => {
  assert.throws(() => parseFilter("lr = 1, resnet"), /cannot read "resnet": expected KEY OP VALUE/);
});

test("serverKey: columns, built-ins, and bare keys as parameters unless only a metric has them", () => {
  const k = known(["lr"], ["loss", "lr"]);
  assert.equal(serverKey("param:model.layers", k), "params.model.layers");
  assert.equal(serverKey("metric:val.acc", k), "metrics.val.acc");
  assert.equal(serverKey("metrics.loss", k), "metrics.loss");
  assert.equal(serverKey("started", k), "startedAt");
  assert.equal(serverKey("status", k), "status");
  assert.equal(serverKey("loss", k), "metrics.loss");
  assert.equal(serverKey("lr", k), "params.lr");  // a parameter wins a name both have
  assert.equal(serverKey("never.seen", k), "params.never.seen");
});

test("serverFilter writes numbers and booleans bare, text quoted and escaped, '~' as like", () => {
  const terms = parseFilter("lr = 0.001, flag = true, name = it's, prefix ~ 50%_a\\b, n == 3");
  // Two levels of escaping: LIKE's (\% \_ \\) inside the string literal's (\\ \').
  assert.equal(serverFilter(terms, known()),
    String.raw`params.lr = 0.001 and params.flag = true and params.name = 'it\'s' and prefix like '%50\\%\\_a\\\\b%' and params.n = 3`);
  assert.equal(serverFilter(parseFilter("x = "), known()), "params.x = ''");
});

test("serverOrder: the server's name and direction, none for columns it cannot sort", () => {
  assert.equal(serverOrder("started", true, known()), "startedAt desc");
  assert.equal(serverOrder("metric:loss", false, known()), "metrics.loss asc");
  assert.equal(serverOrder("duration", false, known()), null);
  assert.equal(serverSortable("hostname"), false);
  assert.equal(serverSortable("param:lr"), true);
});

test("subtreeFilter covers a directory and everything below it, escaped", () => {
  assert.equal(subtreeFilter(""), null);
  assert.equal(subtreeFilter("a_b/c"), String.raw`(directory = 'a_b/c' or directory like 'a\\_b/c/%')`);
});

test("combineFilters joins the scope and the user's terms", () => {
  assert.equal(combineFilters(null, null), null);
  assert.equal(combineFilters("(w)", null), "(w)");
  assert.equal(combineFilters(null, "a = 1 and b = 2"), "a = 1 and b = 2");
  assert.equal(combineFilters("(w)", "a = 1 and b = 2"), "(w) and (a = 1 and b = 2)");
});

test("unknownTerms names the keys no column has", () => {
  const columns = ["status", "prefix", "param:lr", "metric:loss"];
  const terms = parseFilter("lr > 0, params.lr > 0, metrics.loss < 1, startedAt > 0, status = RUNNING, nope = 1");
  assert.deepEqual(unknownTerms(terms, columns).map((t) => t.key), ["nope"]);
});
