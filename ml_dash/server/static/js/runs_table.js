// The workspace view (#/ws/...): runs table (filter, sort, select to compare; only the rows in view are rendered)
// with the workspace charts or the parallel coordinates above it, all over the runs that pass the filter.

import { navigator_ } from "./navigator.js";
import { parallelPanel } from "./parallel.js";
import { cellOf, openSource, parseFilter } from "./runs_source.js";
import {
  LIVE_POLL_MS, el, formatDuration, formatTime, formatValue, setBreadcrumbs, setLive, statusBadge,
} from "./util.js";
import { MAX_OVERLAY, workspaceCharts } from "./workspace_charts.js";

const OVERSCAN = 20;  // rows rendered above and below the visible ones
const PANELS = [["runs", "Runs"], ["charts", "Charts"], ["parallel", "Parallel coordinates"]];

const builtinColumns = [
  { key: "status", label: "status" }, { key: "prefix", label: "prefix" }, { key: "started", label: "started" },
  { key: "duration", label: "duration" }, { key: "hostname", label: "hostname" },
];

export async function runsView(main, namespace, workspace, directory, initialFilter, initialPanel = "runs") {
  const base = `#/ws/${encodeURIComponent(namespace)}/${encodeURIComponent(workspace)}`;
  const crumbs = [[namespace, null], [workspace, base]];
  let dirSoFar = "";
  for (const part of directory.split("/").filter(Boolean)) {
    dirSoFar = dirSoFar ? `${dirSoFar}/${part}` : part;
    crumbs.push([part, `${base}?dir=${encodeURIComponent(dirSoFar)}`]);
  }
  setBreadcrumbs(...crumbs);
  for (const key of [`ns:${namespace}`, `ws:${namespace}/${workspace}`]) navigator_.toggle(key, true);

  const state = { sortKey: "started", sortDesc: true, selected: new Set(), filter: initialFilter, terms: [], timer: null, destroyed: false,
                  panel: PANELS.some(([p]) => p === initialPanel) ? initialPanel : "runs", brushed: null, rowPx: 28, queryTimer: null, panelView: null,
                  applied: "", queries: 0 };
  const filterInput = el("input", { type: "text", id: "runs-filter", value: initialFilter, placeholder: "filter: lr = 0.001, model.layers > 50", spellcheck: "false" });
  const filterError = el("span", { class: "error", id: "runs-filter-error" });
  const compareButton = el("button", { class: "primary", id: "compare-button", disabled: true, onclick: () => {
    location.hash = `#/compare?ids=${[...state.selected].join(",")}`;
  } }, "Compare selected");
  const countLabel = el("span", { class: "muted", id: "runs-count" });
  const tabs = el("div", { class: "tabs", id: "workspace-tabs" });
  const panel = el("section", { id: "workspace-panel" });
  const scroller = el("div", { class: "table-wrap table-scroll", id: "runs-scroll" });
  const bottom = el("div", { class: "table-spacer" });
  main.append(el("h1", {}, directory ? `${workspace} / ${directory}` : workspace),
    el("div", { class: "toolbar" }, filterInput, compareButton, countLabel, filterError), tabs, panel, scroller);

  const source = await openSource({ namespace, workspace, directory });
  const rowsView = () => state.brushed ? { total: state.brushed.length, rowAt: (i) => state.brushed[i], ensure: async () => {} } : source;

  function address() {
    const query = new URLSearchParams();
    if (directory) query.set("dir", directory);
    if (state.filter) query.set("filter", state.filter);
    if (state.panel !== "runs") query.set("view", state.panel);
    return `${base}${query.toString() ? `?${query}` : ""}`;
  }

  // From the keys the source has seen (every loaded page), not by scanning its rows on each scroll frame.
  function columnsOf({ params, metrics }) {
    const paramKeys = [...params].sort(), metricKeys = [...metrics].sort();
    return [...builtinColumns, ...paramKeys.map((k) => ({ key: `param:${k}`, label: k, kind: "param" })),
      ...metricKeys.map((k) => ({ key: `metric:${k}`, label: k, kind: "metric" }))];
  }

  function renderTable() {
    if (state.destroyed) return;
    const view = rowsView();
    const total = view.total;
    const first = Math.max(0, Math.floor(scroller.scrollTop / state.rowPx) - OVERSCAN);
    const last = Math.min(total - 1, first + Math.ceil((scroller.clientHeight || 600) / state.rowPx) + 2 * OVERSCAN);
    const rows = [];
    let missing = false;
    for (let i = first; i <= last; i++) { const row = view.rowAt(i); if (!row) missing = true; rows.push(row); }
    if (missing) view.ensure(first, last).then(renderTable, showError);
    const columns = columnsOf(source.known);
    const shown = rows.filter(Boolean);
    const allBox = el("input", { type: "checkbox", title: "select all shown", onclick: (event) => {
      event.stopPropagation();
      for (const row of shown) event.target.checked ? state.selected.add(row.id) : state.selected.delete(row.id);
      renderTable();
    } });
    allBox.checked = shown.length > 0 && shown.every((r) => state.selected.has(r.id));
    const head = el("tr", {}, el("th", {}, allBox), columns.map((c) => el("th", {
      class: c.kind || "", "data-column": c.key, title: source.sortable(c.key) ? (c.kind ? `${c.kind} ${c.label}` : c.label) : "the server cannot sort by this column",
      onclick: () => {
        if (!source.sortable(c.key)) return;
        if (state.sortKey === c.key) state.sortDesc = !state.sortDesc; else { state.sortKey = c.key; state.sortDesc = false; }
        requery(0);
      },
    }, c.label, state.sortKey === c.key ? el("span", { class: "arrow" }, state.sortDesc ? " ▼" : " ▲") : null)));
    const body = el("tbody", {}, rows.map((row) => (row ? rowElement(row, columns) : el("tr", { class: "loading" }, el("td", { colspan: columns.length + 1 }, "…")))));
    const table = el("table", { class: "grid", id: "runs-table", style: `margin-top:${first * state.rowPx}px` }, el("thead", {}, head), body);
    bottom.style.height = `${Math.max(0, total - last - 1) * state.rowPx}px`;
    scroller.replaceChildren(table, bottom);
    const measured = body.querySelector("tr[data-experiment]");
    if (measured && measured.offsetHeight && Math.abs(measured.offsetHeight - state.rowPx) > 0.5) { state.rowPx = measured.offsetHeight; requestAnimationFrame(renderTable); }
    countLabel.textContent = state.brushed ? `${total} of ${source.total} experiments (brushed)` : `${total} of ${source.all} experiments`;
    scroller.dataset.total = String(total);
    scroller.dataset.filter = state.applied;  // which filter these rows answer (the server's answer may lag the box)
    scroller.dataset.rendered = String(shown.length);
    compareButton.disabled = state.selected.size < 2;
    compareButton.textContent = state.selected.size ? `Compare selected (${state.selected.size})` : "Compare selected";
  }

  function rowElement(row, columns) {
    const box = el("input", { type: "checkbox", class: "select-row", onclick: (event) => {
      event.target.checked ? state.selected.add(row.id) : state.selected.delete(row.id);
      renderTable();
    } });
    box.checked = state.selected.has(row.id);
    const cells = columns.map((c) => {
      const v = cellOf(row, c.key);
      switch (c.key) {
        case "status": return el("td", {}, statusBadge(v));
        case "prefix": return el("td", {}, el("a", { href: `#/exp/${row.id}`, title: row.directory ? `${row.directory}/${row.prefix}` : row.prefix }, v));
        case "started": return el("td", {}, formatTime(v));
        case "duration": return el("td", { class: "num" }, formatDuration(v));
        default: return el("td", { class: typeof v === "number" ? "num" : "" }, formatValue(v));
      }
    });
    return el("tr", { class: state.selected.has(row.id) ? "selected" : "", "data-experiment": row.id, "data-prefix": row.prefix }, el("td", {}, box), cells);
  }

  function showError(error) { filterError.textContent = error.message; }

  // Filter or sort changed: ask the source again (the server after a short pause while typing), then the panel.
  function requery(delay) {
    clearTimeout(state.queryTimer);
    filterError.textContent = "";
    try { state.terms = parseFilter(state.filter); } catch (error) { filterError.textContent = error.message; return; }
    const known = columnsOf(source.known).map((c) => c.key.replace(/^(param|metric):/, ""));
    const unknown = state.terms.filter((t) => !known.includes(t.key.replace(/^(params|metrics)\./, "")) && t.key !== "startedAt");
    if (unknown.length) filterError.textContent = `no column named ${unknown.map((t) => `"${t.key}"`).join(", ")}`;
    const number = ++state.queries, text = state.filter;
    state.queryTimer = setTimeout(async () => {
      try {
        await source.setQuery({ terms: state.terms, sortKey: state.sortKey, sortDesc: state.sortDesc });
        if (!unknown.length) filterError.textContent = "";
      } catch (error) { showError(error); }
      if (number !== state.queries) return;  // a newer filter or sort is on its way
      state.applied = text;
      state.brushed = null;
      scroller.scrollTop = 0;
      renderTable();
      refreshPanel();
    }, source.paged ? delay : 0);
  }

  async function refreshPanel() {
    if (!state.panelView) return;
    const rows = await source.sample(MAX_OVERLAY);
    if (!state.destroyed && state.panelView) await state.panelView.setRows(rows, source.total);
  }

  function showPanel(name) {
    state.panel = name;
    history.replaceState(null, "", address());
    if (state.panelView) state.panelView.destroy();
    state.panelView = null;
    state.brushed = null;
    panel.replaceChildren();
    tabs.replaceChildren(...PANELS.map(([key, label]) => el("button", { class: `tab ${key === name ? "active" : ""}`, "data-panel": key,
      onclick: () => showPanel(key) }, label)));
    const onOpen = (id) => { location.hash = `#/exp/${id}`; };
    if (name === "charts") state.panelView = workspaceCharts(panel, { onOpen });
    if (name === "parallel") {
      state.panelView = parallelPanel(panel, { onOpen, onBrush: (rows) => { state.brushed = rows; scroller.scrollTop = 0; renderTable(); } });
    }
    renderTable();
    refreshPanel().catch(showError);
  }

  filterInput.addEventListener("input", () => {
    state.filter = filterInput.value;
    // Keep the filter in the address (without a hashchange, which would rebuild the view) so it can be shared.
    history.replaceState(null, "", address());
    requery(250);
  });
  let frame = 0;
  scroller.addEventListener("scroll", () => { cancelAnimationFrame(frame); frame = requestAnimationFrame(renderTable); });

  async function live() {
    const anyRunning = source.knownRows().some((r) => r.status === "RUNNING");
    setLive(anyRunning);
    clearTimeout(state.timer);
    if (!anyRunning || state.destroyed) return;
    state.timer = setTimeout(async () => {
      try { if (!source.paged) await source.reload(); await source.setQuery({ terms: state.terms, sortKey: state.sortKey, sortDesc: state.sortDesc }); renderTable(); } catch (error) { console.error(error); }
      live();
    }, LIVE_POLL_MS * 2);
  }

  if (state.filter) requery(0);
  showPanel(state.panel);
  live();
  return { destroy() { state.destroyed = true; clearTimeout(state.timer); clearTimeout(state.queryTimer); if (state.panelView) state.panelView.destroy(); } };
}
