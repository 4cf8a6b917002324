// The workspace view (#/ws/...): the filter box and the compare button over the runs table (runs_table.js), with the
// workspace charts or the parallel coordinates above it, all over the runs that pass the filter; live while any
// run is RUNNING.

import { IDLE_POLL_MS, LIVE_POLL_MS, el, setBreadcrumbs, setLive } from "./dom.js";
import { ColumnChooser } from "./column_chooser.js";
import { filterTerms, parseFilter, unknownTerms } from "./lib/filter.js";
import { tableColumns } from "./lib/rows.js";
import { navigator_ } from "./navigator.js";
import { parallelPanel } from "./parallel.js";
import { openSource } from "./runs_source.js";
import { RunsTable } from "./runs_table.js";
import { MAX_OVERLAY, workspaceCharts } from "./workspace_charts.js";

const PANELS = [["runs", "Runs"], ["charts", "Charts"], ["parallel", "Parallel coordinates"]];

function breadcrumbsOf(namespace, workspace, directory, base) {
  const crumbs = [[namespace, null], [workspace, base]];
  let dirSoFar = "";
  for (const part of directory.split("/").filter(Boolean)) {
    dirSoFar = dirSoFar ? `${dirSoFar}/${part}` : part;
    crumbs.push([part, `${base}?dir=${encodeURIComponent(dirSoFar)}`]);
  }
  return crumbs;
}

export async function workspaceView(main, namespace, workspace, directory, initialFilter, initialPanel = "runs") {
  const base = `#/ws/${encodeURIComponent(namespace)}/${encodeURIComponent(workspace)}`;
  setBreadcrumbs(...breadcrumbsOf(namespace, workspace, directory, base));
  for (const key of [`ns:${namespace}`, `ws:${namespace}/${workspace}`]) navigator_.toggle(key, true);

  const state = { filter: initialFilter, node: null, timer: null, destroyed: false, queryTimer: null, queries: 0,
                  panel: PANELS.some(([p]) => p === initialPanel) ? initialPanel : "runs", panelView: null };
  const filterInput = el("input", { type: "text", id: "runs-filter", value: initialFilter, placeholder: "filter: lr < 0.01, model.layers > 50 or tags contains 'baseline'", spellcheck: "false" });
  const filterError = el("span", { class: "error", id: "runs-filter-error" });
  const compareButton = el("button", { class: "primary", id: "compare-button", disabled: true, onclick: () => {
    location.hash = `#/compare?ids=${[...table.selected].join(",")}`;
  } }, "Compare selected");
  const countLabel = el("span", { class: "muted", id: "runs-count" });
  const tabs = el("div", { class: "tabs", id: "workspace-tabs" });
  const panel = el("section", { id: "workspace-panel" });
  const scroller = el("div", { class: "table-wrap table-scroll", id: "runs-scroll" });
  const chooser = new ColumnChooser(namespace, workspace, {
    onChange: () => table.render(), columnsOf: () => table.allColumns() });
  main.append(el("h1", {}, directory ? `${workspace} / ${directory}` : workspace),
    el("div", { class: "toolbar" }, filterInput, chooser.button, compareButton, countLabel, filterError), chooser.panel, tabs, panel, scroller);

  const source = await openSource({ namespace, workspace, directory }, { sampleLimit: state.panel === "runs" ? 0 : MAX_OVERLAY });
  const showError = (error) => { filterError.textContent = error.message; };
  const table = new RunsTable(scroller, source, {
    onSort: () => requery(0),
    onError: showError,
    onRendered: ({ total, brushed, selected }) => {
      countLabel.textContent = brushed ? `${total} of ${source.total} experiments (brushed)` : `${total} of ${source.all} experiments`;
      compareButton.disabled = selected.size < 2;
      compareButton.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
    },
  });
  table.chooser = chooser;
  const query = () => ({ filter: state.node, sortKey: table.sortKey, sortDesc: table.sortDesc });

  function address() {
    const params = new URLSearchParams();
    if (directory) params.set("dir", directory);
    if (state.filter) params.set("filter", state.filter);
    if (state.panel !== "runs") params.set("view", state.panel);
    return `${base}${params.toString() ? `?${params}` : ""}`;
  }

  // Filter or sort changed: ask the server again (after a short pause while typing), then the panel.
  function requery(delay) {
    clearTimeout(state.queryTimer);
    filterError.textContent = "";
    try { state.node = parseFilter(state.filter); } catch (error) { filterError.textContent = error.message; return; }
    const unknown = unknownTerms(filterTerms(state.node), tableColumns(source.known).map((c) => c.key));
    if (unknown.length) filterError.textContent = `no column named ${unknown.map((t) => `"${t.key}"`).join(", ")}`;
    const number = ++state.queries, text = state.filter;
    state.queryTimer = setTimeout(async () => {
      let refused = null;
      try {
        await source.setQuery(query());
      } catch (error) { refused = error; }
      if (number !== state.queries) return;  // a newer filter or sort is on its way
      // The server's reason for refusing a filter replaces any note of ours; the source then holds no rows.
      if (refused) filterError.textContent = refused.message;
      else if (!unknown.length) filterError.textContent = "";
      table.applied = text;
      table.brushed = null;
      table.rewind();
      table.render();
      refreshPanel();
    }, delay);
  }

  async function refreshPanel() {
    if (!state.panelView) return;
    const rows = await source.sample(MAX_OVERLAY);
    if (!state.destroyed && state.panelView) await state.panelView.setRows(rows, source.total);
  }

  function showPanel(name) {
    state.panel = name;
    source.sampleLimit = name === "runs" ? 0 : MAX_OVERLAY;
    history.replaceState(null, "", address());
    if (state.panelView) state.panelView.destroy();
    state.panelView = null;
    table.brushed = null;
    panel.replaceChildren();
    tabs.replaceChildren(...PANELS.map(([key, label]) => el("button", { class: `tab ${key === name ? "active" : ""}`, "data-panel": key,
      onclick: () => showPanel(key) }, label)));
    const onOpen = (id) => { location.hash = `#/exp/${id}`; };
    if (name === "charts") state.panelView = workspaceCharts(panel, { onOpen });
    if (name === "parallel") {
      state.panelView = parallelPanel(panel, { onOpen, onBrush: (rows) => { table.brushed = rows; table.rewind(); table.render(); } });
    }
    table.render();
    refreshPanel().catch(showError);
  }

  filterInput.addEventListener("input", () => {
    state.filter = filterInput.value;
    // Keep the filter in the address (without a hashchange, which would rebuild the view) so it can be shared.
    history.replaceState(null, "", address());
    requery(250);
  });

  // While any run is RUNNING the rows are read again every few seconds; otherwise only the subtree's count is
  // (one cheap read), and a run started since (a new experiment) brings the rows and the panel up to date. A
  // hidden tab does not poll; it catches up when shown.
  function live() {
    const anyRunning = source.knownRows().some((r) => r.status === "RUNNING");
    setLive(anyRunning);
    clearTimeout(state.timer);
    if (state.destroyed || document.hidden) return;
    state.timer = setTimeout(async () => {
      try {
        const fresh = anyRunning || (await source.countAll()) !== source.all;
        if (fresh && !state.destroyed) {
          await source.setQuery(query());
          table.render();
          if (!anyRunning) refreshPanel().catch(console.error);
        }
      } catch (error) { console.error(error); }
      live();
    }, anyRunning ? LIVE_POLL_MS * 2 : IDLE_POLL_MS);
  }
  const onVisible = () => { if (!document.hidden) live(); };
  document.addEventListener("visibilitychange", onVisible);

  if (state.filter) requery(0);
  showPanel(state.panel);
  live();
  return {
    destroy() {
      state.destroyed = true;
      document.removeEventListener("visibilitychange", onVisible);
      table.destroyed = true;
      clearTimeout(state.timer);
      clearTimeout(state.queryTimer);
      if (state.panelView) state.panelView.destroy();
    },
  };
}
