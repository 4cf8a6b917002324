// Pure filter translation: the runs table's filter box ("lr = 0.001, model.layers > 50") and its column keys → the
// server's experimentPage filter and orderBy grammar (docs/query.md).
// No DOM, storage or network here (tests/dashboard/js/filter.test.mjs runs it under Node).

// Table column → the server grammar's name for it (the grammar's own attribute fields pass as they are).
const BUILTIN = { status: "status", prefix: "prefix", started: "startedAt", startedAt: "startedAt", hostname: "hostname",
                  directory: "directory", completedAt: "completedAt", started_at: "started_at", completed_at: "completed_at",
                  tags: "tags", notes: "notes", id: "id", namespace: "namespace", workspace: "workspace" };
const NOT_IN_SERVER_ORDER = new Set(["duration", "hostname", "tags"]);  // fields the server's orderBy does not know
const SERVER_FIELDS = new Set(["tags", "notes", "id", "namespace", "workspace", "directory", "startedAt", "completedAt",
                               "started_at", "completed_at"]);

export const quoted = (text) => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
export const likeLiteral = (text) => text.replace(/\\/g, "\\\\").replace(/[%_]/g, (c) => `\\${c}`);

// The filter box reads the server's language (docs/query.md, ml_dash/format/filter.py: and / or, parentheses,
// like, tags contains 'x', quoted strings, true / false) plus the box's short forms: a bare key ("lr",
// "model.layers", "loss": a parameter, else a metric), "~" for "contains", an unquoted value as a string
// ("optimizer = sgd"), and "," or "&&" for "and", "||" for "or". Returns null for an empty filter, else a node:
// {and: [nodes]}, {or: [nodes]} or a comparison {key, op, value, literal: "number" | "string" | "bool"}.
// Throws an Error naming the position of what it cannot read.
const FIELD = /^(?:[A-Za-z_][\w\/\-]*|`[^`]*`)(?:\.(?:[\w\/\-]+|`[^`]*`))*/;
const OPERATOR = /^(?:==|!=|<>|>=|<=|=|>|<|~|(?:like|contains)(?![\w]))/i;
const STRING = /^(?:'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")/;
const NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;
const BOOLEAN = /^(?:true|false)(?![\w])/i;
const AND = /^(?:,|&&|and(?![\w]))/i;
const OR = /^(?:\|\||or(?![\w]))/i;
// An unquoted value runs up to a ",", ")", "&&", "||", an " and " / " or ", or the end.
const BARE_END = /,|\)|&&|\|\||\s+(?:and|or)(?![\w])|$/i;
const VALUE_END = /^\s*(?:,|\)|&&|\|\||(?:and|or)(?![\w])|$)/i;  // a number is one only up to one of these

export function parseFilter(text) {
  let at = 0;
  const rest = () => text.slice(at);
  const space = () => { at += rest().match(/^\s*/)[0].length; };
  const fail = (message) => { throw new Error(`filter: ${message} at position ${at}`); };
  const take = (pattern) => { space(); const m = rest().match(pattern); if (m) at += m[0].length; return m && m[0]; };
  const join = (op, items) => { items = items.filter(Boolean); return items.length > 1 ? { [op]: items } : items[0] || null; };

  function disjunction() {
    const items = [conjunction()];
    while (take(OR) !== null) items.push(conjunction());
    return join("or", items);
  }
  function conjunction() {
    const items = [atom()];
    while (take(AND) !== null) items.push(atom());
    return join("and", items);
  }
  function atom() {
    space();
    if (!rest() || /^[,)]/.test(rest()) || AND.test(rest())) return null;  // "a = 1," or ", ,": nothing between
    if (take(/^\(/)) {
      const open = at - 1;
      const node = disjunction();
      if (take(/^\)/) === null) fail(`expected ')' (to close the '(' at position ${open})`);
      return node;
    }
    return comparison();
  }
  function comparison() {
    const key = take(FIELD);
    if (key === null) fail("expected a key (lr, model.layers, params.<key>, metrics.<name>, tags, status, prefix, ...)");
    const op = take(OPERATOR);
    if (op === null) fail(`expected an operator after "${key}": = != < <= > >= ~ like contains`);
    space();
    let value, literal = "string", m;
    if ((m = rest().match(STRING))) {
      const raw = m[0], q = raw[0];
      value = raw.slice(1, -1).replace(new RegExp(`\\\\(.)|${q}${q}`, "g"), (all, c) => (c !== undefined ? c : q));
      at += raw.length;
    } else if ((m = rest().match(NUMBER)) && VALUE_END.test(rest().slice(m[0].length))) {
      value = m[0]; literal = "number"; at += m[0].length;
    } else if ((m = rest().match(BOOLEAN))) {
      value = m[0].toLowerCase(); literal = "bool"; at += m[0].length;
    } else {
      const end = rest().search(BARE_END);
      value = rest().slice(0, end).trim(); at += end;
    }
    return { key, op: { "==": "=", "<>": "!=" }[op] || op.toLowerCase(), value, literal };
  }

  const node = disjunction();
  space();
  if (at < text.length) fail(`unexpected "${rest().slice(0, 20)}" (expected 'and', 'or', ',' or the end)`);
  return node;
}

// The comparisons of a parsed filter, in order.
export function filterTerms(node) {
  if (!node) return [];
  if (node.and || node.or) return (node.and || node.or).flatMap(filterTerms);
  return [node];
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

// A parsed filter (parseFilter) → the server's text; nested groups keep their parentheses.
export function serverFilter(node, known) {
  if (!node) return null;
  if (node.and || node.or) {
    const op = node.and ? "and" : "or";
    return (node.and || node.or).map((n) => (n.and || n.or ? `(${serverFilter(n, known)})` : serverFilter(n, known))).join(` ${op} `);
  }
  const { key, op, value, literal } = node;
  const field = serverKey(key, known);
  if (op === "~") return `${field} like ${quoted(`%${likeLiteral(value)}%`)}`;
  return `${field} ${op} ${literal === "string" ? quoted(value) : value}`;
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

// Filter terms whose key names no column the table knows (columnKeys: "status", "param:lr", "metric:loss", ...)
// nor a field of the server's grammar.
export function unknownTerms(terms, columnKeys) {
  const known = columnKeys.map((k) => k.replace(/^(param|metric):/, ""));
  return terms.filter((t) => !known.includes(t.key.replace(/^(params|metrics)\./, "")) && !SERVER_FIELDS.has(t.key));
}
