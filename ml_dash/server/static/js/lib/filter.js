// Pure filter translation: the runs table's filter box ("lr = 0.001, model.layers > 50") and its column keys → the
// server's experimentPage filter and orderBy grammar (docs/query.md).
// No DOM, storage or network here (tests/dashboard/js/filter.test.mjs runs it under Node).

// Table column → the server grammar's name for it.
const BUILTIN = { status: "status", prefix: "prefix", started: "startedAt", startedAt: "startedAt", hostname: "hostname",
                  directory: "directory", completedAt: "completedAt" };
const NOT_IN_SERVER_ORDER = new Set(["duration", "hostname"]);  // fields the server's orderBy does not know

export const quoted = (text) => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
export const likeLiteral = (text) => text.replace(/\\/g, "\\\\").replace(/[%_]/g, (c) => `\\${c}`);

// "lr = 0.001, model.layers > 50": terms joined by "," or "and"; the key is any column (parameter, metric, status,
// prefix, hostname). Numbers compare as numbers; "~" means "contains". Throws on a term it cannot read.
export function parseFilter(text) {
  const terms = [];
  for (const raw of text.split(/,|\band\b|&&/i)) {
    const term = raw.trim();
    if (!term) continue;
    const match = term.match(/^(.+?)\s*(==|!=|>=|<=|=|>|<|~)\s*(.*)$/);
    if (!match) throw new Error(`cannot read "${term}": expected KEY OP VALUE with OP one of = != > >= < <= ~`);
    terms.push({ key: match[1].trim(), op: match[2], value: match[3].trim().replace(/^["']|["']$/g, "") });
  }
  return terms;
}

// A column key of the table ("param:lr", "metric:loss", "prefix") or a filter key ("lr") → the server's name
// ("params.lr", "metrics.loss", "prefix"). known: {params: Set, metrics: Set} of the keys seen so far; a bare key
// is a parameter unless only a metric has that name.
export function serverKey(key, known) {
  if (key.startsWith("param:")) return `params.${key.slice(6)}`;
  if (key.startsWith("metric:")) return `metrics.${key.slice(7)}`;
  if (/^(params|metrics)\./.test(key)) return key;
  if (BUILTIN[key]) return BUILTIN[key];
  if (known.metrics.has(key) && !known.params.has(key)) return `metrics.${key}`;
  return `params.${key}`;
}

export function serverFilter(terms, known) {
  return terms.map(({ key, op, value }) => {
    if (op === "~") return `${serverKey(key, known)} like ${quoted(`%${likeLiteral(value)}%`)}`;
    const literal = value !== "" && !isNaN(Number(value)) ? value : /^(true|false)$/.test(value) ? value : quoted(value);
    return `${serverKey(key, known)} ${op === "==" ? "=" : op} ${literal}`;
  }).join(" and ");
}

export function serverSortable(key) {
  return !NOT_IN_SERVER_ORDER.has(key);
}

export function serverOrder(sortKey, sortDesc, known) {
  return serverSortable(sortKey) ? `${serverKey(sortKey, known)} ${sortDesc ? "desc" : "asc"}` : null;
}

// A directory view holds its whole subtree; experimentPage's directory argument is one directory only.
export function subtreeFilter(directory) {
  return directory ? `(directory = ${quoted(directory)} or directory like ${quoted(`${likeLiteral(directory)}/%`)})` : null;
}

// The view's scope and the user's terms, as one server filter (null: everything).
export function combineFilters(within, own) {
  return [within, own && within ? `(${own})` : own].filter(Boolean).join(" and ") || null;
}

// Filter terms whose key names no column the table knows (columnKeys: "status", "param:lr", "metric:loss", ...).
export function unknownTerms(terms, columnKeys) {
  const known = columnKeys.map((k) => k.replace(/^(param|metric):/, ""));
  return terms.filter((t) => !known.includes(t.key.replace(/^(params|metrics)\./, "")) && t.key !== "startedAt");
}
