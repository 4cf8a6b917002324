// lib/typed_arrays.js: seriesBatch's base64 point arrays decoded to plain arrays (null for NaN).
import assert from "node:assert/strict";
import { test } from "node:test";

import { decodeArray, decodeEnvelope, decodeTyped } from "../../../ml_dash/server/static/js/lib/typed_arrays.js";

const encode = (type, Type, values) => `${type}:${Buffer.from(new Type(values).buffer).toString("base64")}`;

test("f8, f4 and i4 arrays decode to their numbers", () => {
  assert.deepEqual(decodeArray(encode("f8", Float64Array, [0, 1.5, -2e300, 1.7e9 + 0.25])), [0, 1.5, -2e300, 1.7e9 + 0.25]);
  assert.deepEqual(decodeArray(encode("f4", Float32Array, [0.5, -3, 1024])), [0.5, -3, 1024]);
  assert.deepEqual(decodeArray(encode("i4", Int32Array, [0, 7, -5, 2147483647])), [0, 7, -5, 2147483647]);
});

test("NaN decodes to null (a step never logged, a value JSON could not carry)", () => {
  assert.deepEqual(decodeArray(encode("f8", Float64Array, [NaN, 2, NaN])), [null, 2, null]);
  assert.deepEqual(decodeArray(encode("f4", Float32Array, [1, NaN])), [1, null]);
});

test("an empty array and non-strings pass", () => {
  assert.deepEqual(decodeArray("f8:"), []);
  assert.equal(decodeArray(null), null);
  const list = [1, null];
  assert.equal(decodeArray(list), list);
});

test("the bytes are read little-endian, as the server writes them", () => {
  assert.deepEqual([...decodeTyped(`i4:${Buffer.from([1, 0, 0, 0, 0, 1, 0, 0]).toString("base64")}`)], [1, 256]);
});

test("unknown types and torn lengths are refused with a clear error", () => {
  assert.throws(() => decodeArray("u8:AAAA"), /unknown point array encoding/);
  assert.throws(() => decodeArray("no colon"), /unknown point array encoding/);
  assert.throws(() => decodeArray(`f8:${Buffer.from([1, 2, 3]).toString("base64")}`), /f8 array of 3 bytes/);
});

test("decodeEnvelope decodes steps, values and times and keeps the rest", () => {
  const item = { experimentId: "a", count: 3, steps: encode("i4", Int32Array, [0, 5]), values: encode("f4", Float32Array, [1, 2]),
    times: encode("f8", Float64Array, [10, NaN]) };
  assert.deepEqual(decodeEnvelope(item), { experimentId: "a", count: 3, steps: [0, 5], values: [1, 2], times: [10, null] });
  assert.deepEqual(decodeEnvelope({ steps: [1], values: [2] }), { steps: [1], values: [2], times: null });
  assert.equal(decodeEnvelope(null), null);
});
