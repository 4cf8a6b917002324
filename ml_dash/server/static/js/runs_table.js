// The runs table of a workspace (#/ws/...): filter expressions, sortable parameter/metric columns, selection to compare.

import { api } from "./api.js";
import { navigator_ } from "./navigator.js";
import {
  LIVE_POLL_MS, compareCells, durationOf, el, flatten, formatDuration, formatTime, formatValue, setBreadcrumbs, setLive, statusBadge,
} from "./util.js";

// "lr = 0.001, model.layers > 50": terms joined by "," or "and"; the key is any column (parameter, metric, status,
// prefix, hostname). Numbers compare as numbers; "~" means "contains".
function parseFilter(text) {
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

function matchesTerm(cell, { op, value }) {
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

export async function runsView(main, namespace, workspace, directory, initialFilter) {
  const base = `#/ws/${encodeURIComponent(namespace)}/${encodeURIComponent(workspace)}`;
  const crumbs = [[namespace, null], [workspace, base]];
  let dirSoFar = "";
  for (const part of directory.split("/").filter(Boolean)) {
    dirSoFar = dirSoFar ? `${dirSoFar}/${part}` : part;
    crumbs.push([part, `${base}?dir=${encodeURIComponent(dirSoFar)}`]);
  }
  setBreadcrumbs(...crumbs);
  for (const key of [`ns:${namespace}`, `ws:${namespace}/${workspace}`]) navigator_.toggle(key, true);

  const state = { rows: [], sortKey: "started", sortDesc: true, selected: new Set(), filter: initialFilter, timer: null, destroyed: false };
  const title = el("h1", {}, directory ? `${workspace} / ${directory}` : workspace);
  const filterInput = el("input", { type: "text", id: "runs-filter", value: initialFilter, placeholder: "filter: lr = 0.001, model.layers > 50", spellcheck: "false" });
  const filterError = el("span", { class: "error", id: "runs-filter-error" });
  const compareButton = el("button", { class: "primary", id: "compare-button", disabled: true, onclick: () => {
    location.hash = `#/compare?ids=${[...state.selected].join(",")}`;
  } }, "Compare selected");
  const countLabel = el("span", { class: "muted", id: "runs-count" });
  const tableWrap = el("div", { class: "table-wrap" });
  main.append(title, el("div", { class: "toolbar" }, filterInput, compareButton, countLabel, filterError), tableWrap);

  const builtinColumns = [
    { key: "status", label: "status", get: (r) => r.status },
    { key: "prefix", label: "prefix", get: (r) => r.prefix },
    { key: "started", label: "started", get: (r) => r.startedAt },
    { key: "duration", label: "duration", get: (r) => durationOf(r) },
    { key: "hostname", label: "hostname", get: (r) => r.hostname },
  ];

  async function load() {
    const data = await api.graphql(`query Runs($ns: String!, $ws: String!) { experiments(namespace: $ns, workspace: $ws, limit: 10000) {
      id directory prefix readme status hostname startedAt completedAt params lastMetrics } }`, { ns: namespace, ws: workspace });
    state.rows = data.experiments
      .filter((e) => !directory || e.directory === directory || e.directory.startsWith(`${directory}/`))
      .map((e) => ({ ...e, flatParams: flatten(e.params || {}), lastMetrics: e.lastMetrics || {} }));
    render();
    const anyRunning = state.rows.some((r) => r.status === "RUNNING");
    setLive(anyRunning);
    clearTimeout(state.timer);
    if (anyRunning && !state.destroyed) state.timer = setTimeout(() => load().catch(console.error), LIVE_POLL_MS * 2);
  }

  function cellValue(row, column) {
    return column.get(row);
  }

  function render() {
    const paramKeys = [...new Set(state.rows.flatMap((r) => Object.keys(r.flatParams)))].sort();
    const metricKeys = [...new Set(state.rows.flatMap((r) => Object.keys(r.lastMetrics)))].sort();
    const columns = [...builtinColumns,
      ...paramKeys.map((k) => ({ key: `param:${k}`, label: k, kind: "param", get: (r) => r.flatParams[k] })),
      ...metricKeys.map((k) => ({ key: `metric:${k}`, label: k, kind: "metric", get: (r) => r.lastMetrics[k] }))];

    let terms = [];
    filterError.textContent = "";
    try { terms = parseFilter(state.filter); } catch (error) { filterError.textContent = error.message; }
    const columnFor = (key) => columns.find((c) => c.key === `param:${key}`) || columns.find((c) => c.key === key)
      || columns.find((c) => c.key === `metric:${key}`);
    const unknown = terms.filter((t) => !columnFor(t.key));
    if (unknown.length) filterError.textContent = `no column named ${unknown.map((t) => `"${t.key}"`).join(", ")}`;
    const visible = state.rows.filter((row) => terms.every((t) => {
      const column = columnFor(t.key);
      return column ? matchesTerm(cellValue(row, column), t) : false;
    }));
    const sortColumn = columns.find((c) => c.key === state.sortKey) || builtinColumns[2];
    visible.sort((a, b) => compareCells(cellValue(a, sortColumn), cellValue(b, sortColumn), state.sortDesc));
    countLabel.textContent = `${visible.length} of ${state.rows.length} experiments`;

    const allBox = el("input", { type: "checkbox", title: "select all shown", onclick: (event) => {
      event.stopPropagation();
      for (const row of visible) event.target.checked ? state.selected.add(row.id) : state.selected.delete(row.id);
      render();
    } });
    allBox.checked = visible.length > 0 && visible.every((r) => state.selected.has(r.id));
    const head = el("tr", {}, el("th", {}, allBox), columns.map((c) => el("th", {
      class: c.kind || "", "data-column": c.key, title: c.kind ? `${c.kind} ${c.label}` : c.label,
      onclick: () => {
        if (state.sortKey === c.key) state.sortDesc = !state.sortDesc; else { state.sortKey = c.key; state.sortDesc = false; }
        render();
      },
    }, c.label, state.sortKey === c.key ? el("span", { class: "arrow" }, state.sortDesc ? " ▼" : " ▲") : null)));

    const body = el("tbody");
    for (const row of visible) {
      const box = el("input", { type: "checkbox", class: "select-row", onclick: (event) => {
        event.target.checked ? state.selected.add(row.id) : state.selected.delete(row.id);
        render();
      } });
      box.checked = state.selected.has(row.id);
      const cells = columns.map((c) => {
        const v = cellValue(row, c);
        switch (c.key) {
          case "status": return el("td", {}, statusBadge(v));
          case "prefix": return el("td", {}, el("a", { href: `#/exp/${row.id}`, title: row.directory ? `${row.directory}/${row.prefix}` : row.prefix }, v));
          case "started": return el("td", {}, formatTime(v));
          case "duration": return el("td", { class: "num" }, formatDuration(v));
          default: return el("td", { class: typeof v === "number" ? "num" : "" }, formatValue(v));
        }
      });
      body.append(el("tr", { class: state.selected.has(row.id) ? "selected" : "", "data-experiment": row.id, "data-prefix": row.prefix }, el("td", {}, box), cells));
    }
    const table = el("table", { class: "grid", id: "runs-table" }, el("thead", {}, head), body);
    tableWrap.replaceChildren(table);
    const selectedCount = state.selected.size;
    compareButton.disabled = selectedCount < 2;
    compareButton.textContent = selectedCount ? `Compare selected (${selectedCount})` : "Compare selected";
  }

  filterInput.addEventListener("input", () => {
    state.filter = filterInput.value;
    // Keep the filter in the address (without a hashchange, which would rebuild the view) so it can be shared.
    const query = new URLSearchParams();
    if (directory) query.set("dir", directory);
    if (state.filter) query.set("filter", state.filter);
    history.replaceState(null, "", `${base}${query.toString() ? `?${query}` : ""}`);
    render();
  });

  await load();
  return { destroy() { state.destroyed = true; clearTimeout(state.timer); } };
}
