// The runs table of a workspace view: only the rows in view are rendered (a spacer stands for the rest), a header
// click sorts, check boxes select runs to compare; the rows come from the runs source, or from a parallel
// coordinates brush.

import { el, statusBadge } from "./dom.js";
import { defaultShown, visibleColumns } from "./lib/columns.js";
import { formatDuration, formatTime, formatValue } from "./lib/format.js";
import { cellOf, tableColumns, varyingKeys } from "./lib/rows.js";

const OVERSCAN = 20;  // rows rendered above and below the visible ones

export class RunsTable {
  // onSort(): the sort key or direction changed (re-query the source); onRendered(table): after each render;
  // onError(error): a page of rows could not be read.
  constructor(scroller, source, { onSort, onRendered, onError }) {
    this.scroller = scroller;
    this.source = source;
    Object.assign(this, { onSort, onRendered, onError });
    this.sortKey = "started";
    this.sortDesc = true;
    this.selected = new Set();
    this.brushed = null;  // rows a parallel-coordinates brush narrowed the table to, or null
    this.applied = "";  // the filter text the source's rows answer
    this.rowPx = 28;
    this.total = 0;
    this.destroyed = false;
    this.bottom = el("div", { class: "table-spacer" });
    this.chooser = null;  // the column chooser (column_chooser.js), whose prefs pick the columns drawn
    this.columnCache = { signature: "", columns: [], defaults: new Set() };
    let frame = 0;
    scroller.addEventListener("scroll", () => { cancelAnimationFrame(frame); frame = requestAnimationFrame(() => this.render()); });
  }

  rows() {
    return this.brushed ? { total: this.brushed.length, rowAt: (i) => this.brushed[i], ensure: async () => {} } : this.source;
  }

  // Every column the loaded rows have, and the ones shown by default; recomputed only when new keys or rows arrive.
  allColumns() {
    const { known } = this.source;
    const rows = this.source.knownRows();
    const signature = `${known.params.size}/${known.metrics.size}/${rows.length}`;
    if (signature !== this.columnCache.signature) {
      const columns = tableColumns(known);
      this.columnCache = { signature, columns, defaults: defaultShown(columns, varyingKeys(rows)) };
    }
    return this.columnCache;
  }

  render() {
    if (this.destroyed) return;
    const { scroller, source } = this;
    const view = this.rows();
    const total = view.total;
    const first = Math.max(0, Math.floor(scroller.scrollTop / this.rowPx) - OVERSCAN);
    const last = Math.min(total - 1, first + Math.ceil((scroller.clientHeight || 600) / this.rowPx) + 2 * OVERSCAN);
    const rows = [];
    let missing = false;
    for (let i = first; i <= last; i++) { const row = view.rowAt(i); if (!row) missing = true; rows.push(row); }
    if (missing) view.ensure(first, last).then(() => this.render(), this.onError);
    // From the keys the source has seen (every loaded page), not by scanning its rows on each scroll frame.
    const { columns: all, defaults } = this.allColumns();
    const columns = this.chooser ? visibleColumns(all, this.chooser.prefs, defaults) : all;
    const shown = rows.filter(Boolean);
    const allBox = el("input", { type: "checkbox", title: "select all shown", onclick: (event) => {
      event.stopPropagation();
      for (const row of shown) event.target.checked ? this.selected.add(row.id) : this.selected.delete(row.id);
      this.render();
    } });
    allBox.checked = shown.length > 0 && shown.every((r) => this.selected.has(r.id));
    const head = el("tr", {}, el("th", {}, allBox), columns.map((c) => this.headerCell(c)));
    const body = el("tbody", {}, rows.map((row) => (row ? this.rowElement(row, columns) : el("tr", { class: "loading" }, el("td", { colspan: columns.length + 1 }, "…")))));
    const table = el("table", { class: "grid", id: "runs-table", style: `margin-top:${first * this.rowPx}px` }, el("thead", {}, head), body);
    this.bottom.style.height = `${Math.max(0, total - last - 1) * this.rowPx}px`;
    scroller.replaceChildren(table, this.bottom);
    pinColumns(table);
    const measured = body.querySelector("tr[data-experiment]");
    if (measured && measured.offsetHeight && Math.abs(measured.offsetHeight - this.rowPx) > 0.5) {
      this.rowPx = measured.offsetHeight;
      requestAnimationFrame(() => this.render());
    }
    this.total = total;
    scroller.dataset.total = String(total);
    scroller.dataset.filter = this.applied;  // which filter these rows answer (the server's answer may lag the box)
    scroller.dataset.rendered = String(shown.length);
    scroller.dataset.columns = String(columns.length);
    this.onRendered(this);
  }

  headerCell(c) {
    const sortable = this.source.sortable(c.key);
    return el("th", {
      class: `${c.kind || ""}${c.pinned ? " pinned" : ""}`, "data-column": c.key, title: sortable ? (c.kind ? `${c.kind} ${c.label}` : c.label) : "the server cannot sort by this column",
      onclick: () => {
        if (!sortable) return;
        if (this.sortKey === c.key) this.sortDesc = !this.sortDesc; else { this.sortKey = c.key; this.sortDesc = false; }
        this.onSort();
      },
    }, c.label, this.sortKey === c.key ? el("span", { class: "arrow" }, this.sortDesc ? " ▼" : " ▲") : null);
  }

  rowElement(row, columns) {
    const box = el("input", { type: "checkbox", class: "select-row", onclick: (event) => {
      event.target.checked ? this.selected.add(row.id) : this.selected.delete(row.id);
      this.render();
    } });
    box.checked = this.selected.has(row.id);
    const cells = columns.map((c) => {
      const cell = this.cell(row, c);
      if (c.pinned) cell.classList.add("pinned");
      return cell;
    });
    return el("tr", { class: this.selected.has(row.id) ? "selected" : "", "data-experiment": row.id, "data-prefix": row.prefix }, el("td", {}, box), cells);
  }

  cell(row, c) {
    const v = cellOf(row, c.key);
    switch (c.key) {
      case "status": return el("td", {}, statusBadge(v));
      case "prefix": return el("td", {}, el("a", { href: `#/exp/${row.id}`, title: row.directory ? `${row.directory}/${row.prefix}` : row.prefix }, v));
      case "started": return el("td", {}, formatTime(v));
      case "duration": return el("td", { class: "num" }, formatDuration(v));
      case "tags": return el("td", { class: "tags" }, (v || []).map((t) => el("span", { class: "tag" }, t)));
      case "notes": return el("td", { class: "notes", title: v || "" }, (v || "").split("\n")[0]);
      default: return el("td", { class: typeof v === "number" ? "num" : "" }, formatValue(v));
    }
  }

  // Back to the first row (after a new filter, sort or brush).
  rewind() {
    this.scroller.scrollTop = 0;
  }
}

// Pinned columns (first in the row, after the check box) stick to the left edge: each at the summed width of the
// cells before it, measured once the table is laid out.
function pinColumns(table) {
  const head = table.querySelector("thead tr");
  const pinned = [...head.children].filter((th) => th.classList.contains("pinned"));
  if (!pinned.length) return;
  const offsets = [];
  let left = head.children[0].offsetWidth;
  for (const th of pinned) { offsets.push(left); left += th.offsetWidth; }
  for (const tr of table.querySelectorAll("tr")) {
    const cells = [...tr.children];
    cells[0].classList.add("pinned");
    cells[0].style.left = "0px";
    pinned.forEach((_, i) => { if (cells[i + 1]) cells[i + 1].style.left = `${offsets[i]}px`; });
  }
}
