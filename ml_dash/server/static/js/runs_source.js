// The runs of a workspace view: pages of the server's experimentPage, filtered, sorted and paged in the database
// (lib/filter.js writes the filter and the order); pages are read as the table scrolls to them.

import { api } from "./api.js";
import { combineFilters, serverFilter, serverOrder, serverSortable, subtreeFilter } from "./lib/filter.js";
import { prepareRow } from "./lib/rows.js";

const ROW_FIELDS = "id directory prefix readme status hostname startedAt completedAt params lastMetrics tags notes";
// Each metric's last / min / max over its whole series (lib/rows.js prepareRow: row.summary), for the table's summary
// columns. Table pages only: the charts' sample of up to 1,000 runs does not need it.
const SUMMARY_FIELDS = "metricSummary { name last min max }";
const PAGE = 100;  // rows per experimentPage read: the first one covers the rows in view and the overscan

// The source of a workspace (or directory subtree) view, its first page read (newest first). sampleLimit: a panel
// (charts, parallel coordinates) will want sample(sampleLimit); it is read beside the first page, not after it.
export async function openSource(scope, { sampleLimit = 0 } = {}) {
  const source = new ServerSource(scope);
  source.sampleLimit = sampleLimit;
  await source.setQuery({ filter: null, sortKey: "started", sortDesc: true });
  return source;
}

class ServerSource {
  constructor({ namespace, workspace, directory }) {
    this.scope = { ns: namespace, ws: workspace };
    this.within = subtreeFilter(directory);
    this.pages = new Map();
    this.known = { params: new Set(), metrics: new Set() };  // keys seen in any page: the table's columns
    this.total = 0; this.all = 0;
    this.sampleLimit = 0; this.sampling = null;  // the panel's sample of the current query, read with its first page
  }

  sortable(key) { return serverSortable(key); }

  // filter: a parsed filter (lib/filter.js parseFilter) or null. A query the server refuses leaves no rows (not
  // the previous filter's, which would look like its answer) and throws the server's reason.
  async setQuery({ filter, sortKey, sortDesc }) {
    this.filter = combineFilters(this.within, serverFilter(filter, this.known));
    this.orderBy = serverOrder(sortKey, sortDesc, this.known);
    // A panel's sample of more than a page is a second read: it goes out now, beside the first page, instead of
    // after it (a 1,000-run overlay waited a whole extra round trip). Its failure is the panel's, reported there.
    this.sampling = this.sampleLimit > PAGE ? { limit: this.sampleLimit, rows: this.fetchPage(0, this.sampleLimit, false) } : null;
    if (this.sampling) this.sampling.rows.catch(() => {});
    try {
      await this.reload();
    } catch (error) {
      this.pages = new Map([[0, []]]);
      this.total = 0;
      throw error;
    }
  }

  async fetchPage(offset, limit, withSummary = true) {
    const data = await api.graphql(`query Page($ns: String, $ws: String, $within: String, $filter: String, $order: String, $limit: Int, $offset: Int) {
      all: experimentPage(namespace: $ns, workspace: $ws, filter: $within, limit: 1) { total }
      page: experimentPage(namespace: $ns, workspace: $ws, filter: $filter, orderBy: $order, limit: $limit, offset: $offset) {
        total items { ${ROW_FIELDS} ${withSummary ? SUMMARY_FIELDS : ""} } } }`, { ...this.scope, within: this.within, filter: this.filter, order: this.orderBy, limit, offset });
    // A refused filter comes back as page: null with the server's message (a partial answer: "all" still counts).
    if (!data.page) throw new Error((data.errors || []).map((m) => m.replace(/^page: /, "")).join("; ") || "the server answered no page");
    this.total = data.page.total; this.all = data.all ? data.all.total : this.all;
    const rows = data.page.items.map(prepareRow);
    for (const r of rows) {
      for (const k of Object.keys(r.flatParams)) this.known.params.add(k);
      for (const k of Object.keys(r.lastMetrics)) this.known.metrics.add(k);
    }
    return rows;
  }

  // The subtree's number of experiments, one cheap read (no rows): the idle table's change check.
  async countAll() {
    const data = await api.graphql(`query Count($ns: String, $ws: String, $within: String) {
      all: experimentPage(namespace: $ns, workspace: $ws, filter: $within, limit: 1) { total } }`, { ...this.scope, within: this.within });
    return data.all.total;
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
    const sampling = this.sampling;
    this.sampling = null;  // used once: a later sample (a live refresh) reads the rows again
    if (sampling && sampling.limit >= limit) return (await sampling.rows).slice(0, limit);
    return this.fetchPage(0, limit, false);
  }

  async reload() {
    this.pages = new Map();
    await this.ensure(0, PAGE - 1);
  }
}
