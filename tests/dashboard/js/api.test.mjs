// api.js loads without a browser and talks through the fetch, storage and prompt it is configured with.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createApi } from "../../../ml_dash/server/static/js/api.js";

const json = (status, body) => ({ status, ok: status < 400, json: async () => body });

function memoryStorage(initial = {}) {
  const items = { ...initial };
  return { items, getItem: (k) => items[k] ?? null, setItem: (k, v) => { items[k] = String(v); } };
}

test("graphql posts the query and returns its data; partial errors are reported and attached", async () => {
  const calls = [], reported = [];
  const api = createApi().configure({
    fetchImpl: async (url, options) => { calls.push([url, options]); return json(200, { data: { a: 1, b: null }, errors: [{ path: ["b"], message: "boom" }] }); },
    onPartialErrors: (messages) => reported.push(messages),
  });
  const data = await api.graphql("{ a b }", { x: 1 });
  assert.deepEqual(data, { a: 1, b: null });
  assert.deepEqual(data.errors, ["b: boom"]);
  assert.deepEqual(reported, [["b: boom"]]);
  assert.equal(calls[0][0], "/graphql");
  assert.deepEqual(JSON.parse(calls[0][1].body), { query: "{ a b }", variables: { x: 1 } });
  assert.equal(calls[0][1].headers.Authorization, undefined);
});

test("graphql without data is an error naming the messages", async () => {
  const api = createApi().configure({ fetchImpl: async () => json(400, { errors: [{ message: "bad query" }] }) });
  await assert.rejects(api.graphql("{"), /bad query/);
});

test("a 401 asks for a token once, keeps it in storage and retries with it", async () => {
  const storage = memoryStorage(), seen = [];
  const api = createApi().configure({
    storage,
    askToken: () => " secret ",
    fetchImpl: async (_, options) => { seen.push(options.headers.Authorization); return options.headers.Authorization ? json(200, { ok: 1 }) : json(401, {}); },
  });
  assert.deepEqual(await api.rest("/x"), { ok: 1 });
  assert.deepEqual(seen, [undefined, "Bearer secret"]);
  assert.equal(storage.items.mlDashToken, "secret");
  // A later page load reads it back.
  assert.equal(createApi().configure({ storage }).token, "secret");
});

test("rest raises the server's error; fileUrl encodes each path segment", async () => {
  const api = createApi().configure({ fetchImpl: async () => json(404, { error: "no such experiment" }) });
  await assert.rejects(api.rest("/experiments/x"), /no such experiment/);
  assert.equal(api.fileUrl("a b", "dir/my file#1.txt"), "/api/v1/experiments/a%20b/files/dir/my%20file%231.txt");
});
