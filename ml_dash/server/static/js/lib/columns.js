// Pure column choice for the runs table: which columns show by default (status, name, a few parameters that vary,
// the last metrics), and the user's choices on top (shown or hidden, pinned, order), kept per workspace as JSON.
// No DOM, storage or network here (tests/dashboard/js/columns.test.mjs runs it under Node).

export const DEFAULT_PARAMS = 6;  // parameters that vary between the loaded runs, shown by default
export const DEFAULT_METRICS = 6;  // metrics shown by default
const DEFAULT_BUILTINS = new Set(["status", "prefix", "started", "duration", "tags"]);

export const emptyPrefs = () => ({ shown: {}, pinned: [], order: [] });

// Saved text → prefs; anything unreadable (an older format, a hand edit) is the defaults, never an error.
export function parsePrefs(text) {
  try {
    const p = JSON.parse(text);
    if (!p || typeof p !== "object") return emptyPrefs();
    const strings = (a) => (Array.isArray(a) ? a.filter((k) => typeof k === "string") : []);
    const shown = {};
    for (const [k, v] of Object.entries(p.shown && typeof p.shown === "object" ? p.shown : {})) if (typeof v === "boolean") shown[k] = v;
    return { shown, pinned: strings(p.pinned), order: strings(p.order) };
  } catch { return emptyPrefs(); }
}

// The keys shown when the user chose nothing: the default built-ins, the first DEFAULT_PARAMS varying parameters
// and the first DEFAULT_METRICS metrics (metrics whose name says loss first: what a user looks for).
export function defaultShown(columns, varying) {
  const vary = new Set(varying.map((k) => `param:${k}`));
  const params = columns.filter((c) => vary.has(c.key)).slice(0, DEFAULT_PARAMS);
  const metrics = columns.filter((c) => c.kind === "metric")
    .sort((a, b) => (/loss/i.test(b.label) - /loss/i.test(a.label)) || 0).slice(0, DEFAULT_METRICS);
  return new Set([...columns.filter((c) => DEFAULT_BUILTINS.has(c.key)), ...params, ...metrics].map((c) => c.key));
}

export function isShown(prefs, defaults, key) {
  return key in prefs.shown ? prefs.shown[key] : defaults.has(key);
}

// Every column in the user's order (the ones they moved, then the rest as given), pinned ones first, each with
// {shown, pinned}. The table draws the shown ones; the chooser lists all.
export function arrange(columns, prefs, defaults) {
  const byKey = new Map(columns.map((c) => [c.key, c]));
  const ordered = [...prefs.order.filter((k) => byKey.has(k)), ...columns.map((c) => c.key).filter((k) => !prefs.order.includes(k))];
  const pinned = new Set(prefs.pinned);
  const out = ordered.map((k) => ({ ...byKey.get(k), shown: isShown(prefs, defaults, k), pinned: pinned.has(k) }));
  return [...out.filter((c) => c.pinned), ...out.filter((c) => !c.pinned)];
}

export function visibleColumns(columns, prefs, defaults) {
  return arrange(columns, prefs, defaults).filter((c) => c.shown || c.pinned);
}

export function setShown(prefs, key, shown) {
  return { ...prefs, shown: { ...prefs.shown, [key]: shown } };
}

export function setPinned(prefs, key, pinned) {
  const rest = prefs.pinned.filter((k) => k !== key);
  return { ...prefs, pinned: pinned ? [...rest, key] : rest, shown: pinned ? { ...prefs.shown, [key]: true } : prefs.shown };
}

// Move a column one place left (delta -1) or right (+1): a shown column past the next shown one (the hidden ones
// between do not count), a hidden one by one place. The whole order is then saved.
export function move(prefs, columns, defaults, key, delta) {
  const all = arrange(columns, prefs, defaults);
  const keys = all.map((c) => c.key);
  const from = keys.indexOf(key);
  if (from < 0) return prefs;
  const visible = (c) => c.shown || c.pinned;
  let to = from + delta;
  if (visible(all[from])) while (to >= 0 && to < keys.length && !visible(all[to])) to += delta;
  to = Math.max(0, Math.min(keys.length - 1, to));
  if (from === to) return prefs;
  keys.splice(to, 0, ...keys.splice(from, 1));
  return { ...prefs, order: keys };
}

// Where the choices of one workspace are kept (the browser's localStorage).
export const prefsKey = (namespace, workspace) => `mlDashColumns:${namespace}/${workspace}`;
