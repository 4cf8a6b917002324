// Point arrays of seriesBatch(encoding: "base64") (server/http/series_encoding.py): "<type>:<base64>", the bytes of a
// little-endian typed array (f8 Float64, f4 Float32, i4 Int32), NaN standing for null. Decoded here into plain arrays
// with null where JSON had null, so the charts take either encoding the same way.

const TYPES = { f8: Float64Array, f4: Float32Array, i4: Int32Array };
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// The typed array a "<type>:<base64>" string holds; throws on an unknown type or a length that is not whole items.
export function decodeTyped(text) {
  const colon = text.indexOf(":");
  const Type = TYPES[text.slice(0, colon)];
  if (colon < 0 || !Type) throw new Error(`unknown point array encoding: ${JSON.stringify(text.slice(0, 8))}`);
  const binary = atob(text.slice(colon + 1));
  if (binary.length % Type.BYTES_PER_ELEMENT) throw new Error(`a ${text.slice(0, colon)} array of ${binary.length} bytes`);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  if (!LITTLE_ENDIAN) {  // every browser in use is little-endian; a big-endian one swaps each item's bytes
    const size = Type.BYTES_PER_ELEMENT;
    for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  }
  return new Type(bytes.buffer);
}

// A plain array: numbers, null for NaN. Anything that is not a string (a JSON list, null) comes back as it is.
export function decodeArray(value) {
  if (typeof value !== "string") return value;
  const typed = decodeTyped(value);
  const out = new Array(typed.length);
  for (let i = 0; i < typed.length; i++) out[i] = typed[i] === typed[i] ? typed[i] : null;
  return out;
}

// A seriesBatch answer item with its steps/values/times decoded (null items stay null).
export function decodeEnvelope(item) {
  if (!item) return item;
  return { ...item, steps: decodeArray(item.steps), values: decodeArray(item.values), times: decodeArray(item.times ?? null) };
}
