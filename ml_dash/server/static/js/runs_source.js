// The runs of a workspace view: pages of the server's experimentPage (filtered, sorted, paged in the database), or,
// from a server without that field, every experiment of the workspace filtered and sorted here.

import { api } from "./api.js";
import { compareCells, durationOf, flatten } from "./util.js";

const ROW_FIELDS = "id directory prefix readme status hostname startedAt completedAt params lastMetrics";
const PAGE = 100;  // rows per experimentPage read: the first one covers the rows in view and the overscan
// Table column → the server grammar's name for it (issue 16's filter and orderBy).
const BUILTIN = { status: "status", prefix: "prefix", started: "startedAt", startedAt: "startedAt", hostname: "hostname",
                  directory: "directory", completedAt: "completedAt" };
const NOT_IN_SERVER_ORDER = new Set(["duration", "hostname"]);  // fields the server's orderBy does not know

const quoted = (text) => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
const likeLiteral = (text) => text.replace(/\\/g, "\\\\").replace(/[%_]/g, (c) => `\\${c}`);

// "lr = 0.001, model.layers > 50": terms joined by "," or "and"; the key is any column (parameter, metric, status,
// prefix, hostname). Numbers compare as numbers; "~" means "contains".
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

export function matchesTerm(cell, { op, value }) {
  if (op === "~") return cell !== undefined && cell !== null && String(cell).toLowerCase().includes(value.toLowerCase());
  if (cell === undefined || cell === null) return op === "!=";
  const wanted = value === "" || isNaN(Number(value)) ? value : Number(value);
  let order;
  if (typeof wanted === "number" && (typeof cell === "number" || typeof cell === "boolean")) order = Number(cell) - wanted;
  else order = String(cell).localeCompare(String(wanted), undefined, { numeric: true });
  switch (op) {
    case "=": case "==": return order === 0;
    case "!=": return order !== 0;
    case ">": return order > 0;
    case ">=": return order >= 0;
    case "<": return order < 0;
    case "<=": return order <= 0;
  }
  return false;
}

// A column key of the table ("param:lr", "metric:loss", "prefix") → the server's name ("params.lr", ...).
function serverKey(key, known) {
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

export function prepareRow(e) {
  return { ...e, flatParams: flatten(e.params || {}), lastMetrics: e.lastMetrics || {} };
}

export function cellOf(row, key) {
  if (key === "duration") return durationOf(row);
  if (key === "started") return row.startedAt;
  if (key.startsWith("param:")) return row.flatParams[key.slice(6)];
  if (key.startsWith("metric:")) return row.lastMetrics[key.slice(7)];
  return row[key];
}

let pagesSupported = null;  // whether this server has experimentPage (asked once per page load)

export async function openSource(scope) {
  if (pagesSupported !== false) {
    const source = new ServerSource(scope);
    try {
      await source.setQuery({ terms: [], sortKey: "started", sortDesc: true });
      pagesSupported = true;
      return source;
    } catch (error) {
      if (!/experimentPage/.test(error.message)) throw error;
      pagesSupported = false;
    }
  }
  const source = new LocalSource(scope);
  await source.reload();
  return source;
}

class ServerSource {
  constructor({ namespace, workspace, directory }) {
    this.scope = { ns: namespace, ws: workspace };
    // A directory view holds its whole subtree; experimentPage's directory argument is one directory only.
    this.within = directory ? `(directory = ${quoted(directory)} or directory like ${quoted(`${likeLiteral(directory)}/%`)})` : null;
    this.pages = new Map();
    this.known = { params: new Set(), metrics: new Set() };
    this.total = 0; this.all = 0; this.paged = true;
  }

  sortable(key) { return !NOT_IN_SERVER_ORDER.has(key); }

  async setQuery({ terms, sortKey, sortDesc }) {
    const own = terms.length ? serverFilter(terms, this.known) : null;
    this.filter = [this.within, own && this.within ? `(${own})` : own].filter(Boolean).join(" and ") || null;
    this.orderBy = this.sortable(sortKey) ? `${serverKey(sortKey, this.known)} ${sortDesc ? "desc" : "asc"}` : null;
    await this.reload();
  }

  async fetchPage(offset, limit) {
    const data = await api.graphql(`query Page($ns: String, $ws: String, $within: String, $filter: String, $order: String, $limit: Int, $offset: Int) {
      all: experimentPage(namespace: $ns, workspace: $ws, filter: $within, limit: 1) { total }
      page: experimentPage(namespace: $ns, workspace: $ws, filter: $filter, orderBy: $order, limit: $limit, offset: $offset) {
        total items { ${ROW_FIELDS} } } }`, { ...this.scope, within: this.within, filter: this.filter, order: this.orderBy, limit, offset });
    this.total = data.page.total; this.all = data.all.total;
    const rows = data.page.items.map(prepareRow);
    for (const r of rows) {
      for (const k of Object.keys(r.flatParams)) this.known.params.add(k);
      for (const k of Object.keys(r.lastMetrics)) this.known.metrics.add(k);
    }
    return rows;
  }

  async ensure(first, last) {
    const wanted = [], pages = this.pages;  // a newer query replaces the map: answers to older ones land in theirs
    for (let p = Math.floor(Math.max(0, first) / PAGE); p <= Math.floor(last / PAGE); p++) {
      if (!pages.has(p) && (p === 0 || p * PAGE < this.total)) pages.set(p, this.fetchPage(p * PAGE, PAGE).then((rows) => {
        pages.set(p, rows); return rows;
      }, (error) => { pages.delete(p); throw error; }));
      if (pages.get(p) instanceof Promise) wanted.push(pages.get(p));
    }
    await Promise.all(wanted);
  }

  rowAt(i) {
    const page = this.pages.get(Math.floor(i / PAGE));
    return Array.isArray(page) ? page[i % PAGE] : undefined;
  }

  knownRows() { return [...this.pages.values()].filter(Array.isArray).flat(); }

  // The first `limit` rows in the table's order, for the charts and the parallel coordinates.
  async sample(limit) {
    if (this.total <= PAGE && Array.isArray(this.pages.get(0))) return this.pages.get(0).slice(0, limit);
    return this.fetchPage(0, limit);
  }

  async reload() {
    this.pages = new Map();
    await this.ensure(0, PAGE - 1);
  }
}

class LocalSource {
  constructor({ namespace, workspace, directory }) {
    this.scope = { namespace, workspace, directory };
    this.rows = []; this.visible = []; this.paged = false;
    this.query = { terms: [], sortKey: "started", sortDesc: true };
    this.known = { params: new Set(), metrics: new Set() };
  }

  sortable() { return true; }

  async reload() {
    const { namespace, workspace, directory } = this.scope;
    const data = await api.graphql(`query Runs($ns: String!, $ws: String!) { experiments(namespace: $ns, workspace: $ws, limit: 10000) {
      ${ROW_FIELDS} } }`, { ns: namespace, ws: workspace });
    this.rows = data.experiments
      .filter((e) => !directory || e.directory === directory || e.directory.startsWith(`${directory}/`))
      .map(prepareRow);
    for (const r of this.rows) {
      for (const k of Object.keys(r.flatParams)) this.known.params.add(k);
      for (const k of Object.keys(r.lastMetrics)) this.known.metrics.add(k);
    }
    this.apply();
  }

  async setQuery(query) {
    this.query = query;
    this.apply();
  }

  apply() {
    const { terms, sortKey, sortDesc } = this.query;
    const columnOf = (key) => {
      if (this.rows.some((r) => key in r.flatParams)) return `param:${key}`;
      if (BUILTIN[key] || key === "duration") return key === "startedAt" ? "started" : key;
      return `metric:${key}`;
    };
    this.visible = this.rows.filter((row) => terms.every((t) => matchesTerm(cellOf(row, columnOf(t.key)), t)));
    this.visible.sort((a, b) => compareCells(cellOf(a, sortKey), cellOf(b, sortKey), sortDesc));
    this.total = this.visible.length; this.all = this.rows.length;
  }

  async ensure() {}
  rowAt(i) { return this.visible[i]; }
  knownRows() { return this.rows; }
  async sample(limit) { return this.visible.slice(0, limit); }
}
