// lib/filter.js: the filter box's grammar and its translation to the server's experimentPage filter and orderBy.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  combineFilters, filterTerms, parseFilter, serverFilter, serverKey, serverOrder, serverSortable, subtreeFilter, unknownTerms,
} from "../../../ml_dash/server/static/js/lib/filter.js";

const known = (params = [], metrics = []) => ({ params: new Set(params), metrics: new Set(metrics) });

const T = (key, op, value, literal = "string") => ({ key, op, value, literal });

test("parseFilter keeps the short forms: commas, 'and', '&&', bare keys, unquoted values, '~'", () => {
  assert.deepEqual(parseFilter("lr = 0.001, model.layers > 50 and optimizer != sgd && prefix ~ 'res net'"), { and: [
    T("lr", "=", "0.001", "number"), T("model.layers", ">", "50", "number"), T("optimizer", "!=", "sgd"),
    T("prefix", "~", "res net"),
  ] });
  assert.deepEqual(filterTerms(parseFilter("a>=1, b<=2, c==3, d<4")), [
    T("a", ">=", "1", "number"), T("b", "<=", "2", "number"), T("c", "=", "3", "number"), T("d", "<", "4", "number"),
  ]);
  assert.equal(parseFilter("  ,  "), null);
  assert.equal(parseFilter(""), null);
  assert.deepEqual(parseFilter("prefix ~ res net"), T("prefix", "~", "res net"));
});

test("parseFilter reads the server's language: or, parentheses, like, tags contains, quotes, booleans", () => {
  assert.deepEqual(parseFilter("(params.lr < 0.01 or optimizer = 'adam') and tags contains 'baseline'"), { and: [
    { or: [T("params.lr", "<", "0.01", "number"), T("optimizer", "=", "adam")] }, T("tags", "contains", "baseline"),
  ] });
  assert.deepEqual(parseFilter("prefix LIKE 'res%' || flag = TRUE"), { or: [T("prefix", "like", "res%"), T("flag", "=", "true", "bool")] });
  assert.deepEqual(parseFilter(String.raw`name = 'it\'s' and x <> "a""b"`), { and: [T("name", "=", "it's"), T("x", "!=", 'a"b')] });
  assert.deepEqual(parseFilter("metrics.train/loss < 1e-3"), T("metrics.train/loss", "<", "1e-3", "number"));
});

test("parseFilter names the position of what it cannot read", () => {
  assert.throws(() => parseFilter("lr = 1, resnet"), /expected an operator after "resnet".* at position 14/);
  assert.throws(() => parseFilter("(lr = 1"), /expected '\)' \(to close the '\(' at position 0\) at position 7/);
  assert.throws(() => parseFilter("lr = 1 )"), /unexpected "\)"/);
  assert.throws(() => parseFilter("= 3"), /expected a key/);
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

test("serverFilter writes the server's language back, groups in parentheses, bare keys resolved", () => {
  const k = known(["lr", "optimizer"], ["train/loss"]);
  assert.equal(serverFilter(parseFilter("(lr < 0.01 || optimizer = adam) and tags contains 'x' and train/loss < 2"), k),
    "(params.lr < 0.01 or params.optimizer = 'adam') and tags contains 'x' and metrics.train/loss < 2");
  assert.equal(serverFilter(parseFilter("prefix like 'res%' or status = 'running' and notes like '%ok%'"), k),
    "prefix like 'res%' or (status = 'running' and notes like '%ok%')");
  assert.equal(serverFilter(null, k), null);
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
  const terms = filterTerms(parseFilter("lr > 0, params.lr > 0, metrics.loss < 1, startedAt > 0, status = RUNNING, nope = 1 or tags contains 'a'"));
  assert.deepEqual(unknownTerms(terms, columns).map((t) => t.key), ["nope"]);
});
