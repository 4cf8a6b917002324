// Workspace charts: one chart per metric with every run that passes the runs table's filter overlaid (one batched
// seriesBatch request per metric), coloured or grouped by a parameter, with the shared smoothing/log/x controls.

import { api } from "./api.js";
import { controlsToolbar, defaultControls, yRangeControl } from "./chart_controls.js";
import { el } from "./dom.js";
import { formatValue } from "./lib/format.js";
import { groupByValue, varyingKeys } from "./lib/rows.js";
import { colorBy } from "./lib/scales.js";
import { bucketsFor, effectiveXMode } from "./lib/series.js";
import { decodeEnvelope } from "./lib/typed_arrays.js";
import { OverlayChart } from "./overlay_chart.js";

export const MAX_OVERLAY = 1000;  // runs per chart: seriesBatch's own limit

export function workspaceCharts(container, { onOpen }) {
  const state = { controls: defaultControls(), colorKey: "", group: false, rows: [], charts: new Map(), request: 0, metrics: "" };
  const colorSelect = el("select", { id: "color-by", title: "colour the runs by a parameter" });
  const groupBox = el("input", { type: "checkbox", id: "group-by" });
  const legend = el("span", { class: "legend", id: "charts-legend" });
  const grid = el("div", { class: "chart-group", id: "workspace-charts" });
  const note = el("p", { class: "muted", id: "charts-note" });
  container.append(el("div", { class: "toolbar" }, controlsToolbar(state.controls, (_, what) => (what === "xMode" ? loadAll() : drawAll())),
    el("label", { class: "control" }, "colour by ", colorSelect),
    el("label", { class: "control", title: "draw each value's runs as their mean with a min–max band" }, groupBox, " group"), legend), note, grid);
  colorSelect.addEventListener("change", () => { state.colorKey = colorSelect.value; drawAll(); });
  groupBox.addEventListener("change", () => { state.group = groupBox.checked; drawAll(); });

  function labelOf(row) {
    const name = row.directory ? `${row.directory}/${row.prefix}` : row.prefix;
    return state.colorKey ? `${name} (${state.colorKey}=${formatValue(row.flatParams[state.colorKey])})` : name;
  }

  async function setRows(rows, total) {
    state.rows = rows;
    const keys = varyingKeys(rows);
    const keep = keys.includes(state.colorKey) ? state.colorKey : "";
    colorSelect.replaceChildren(el("option", { value: "" }, "(each run)"), ...keys.map((k) => el("option", { value: k }, k)));
    colorSelect.value = state.colorKey = keep;
    note.textContent = total > rows.length ? `Showing the first ${rows.length} of ${total} runs (in the table's order).` : "";
    const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.lastMetrics)))].sort();
    if (metrics.join("\n") !== state.metrics) {
      state.metrics = metrics.join("\n");
      state.charts.clear();
      grid.replaceChildren();
      if (!metrics.length) grid.append(el("p", { class: "muted" }, "No metrics in these runs."));
      for (const metric of metrics) {
        const count = el("span", { class: "count" });
        const div = el("div", { class: "chart overlay", "data-metric": metric });
        const card = el("div", { class: "chart-card" }, el("div", { class: "title" }, el("span", {}, metric), count), div);
        grid.append(card);
        const overlay = new OverlayChart(div, { onOpen });
        card.querySelector(".title").append(yRangeControl((yRange) => overlay.setYRange(yRange)));
        state.charts.set(metric, { metric, count, div, overlay, runs: [], answers: [] });
      }
    }
    await loadAll();
  }

  async function loadAll() {
    const number = ++state.request;
    await Promise.all([...state.charts.values()].map((chart) => load(chart, number).catch((error) => {
      chart.div.dataset.state = "error";
      chart.count.textContent = `could not load: ${error.message}`;
    })));
  }

  async function load(chart, number) {
    const runs = state.rows.filter((r) => chart.metric in r.lastMetrics).slice(0, MAX_OVERLAY);
    // On "auto", a chart whose runs were all logged without steps (known from its last answer) goes on the time axis.
    const withTimes = effectiveXMode(state.controls.xMode, chart.stepless) !== "step";
    const maxPoints = bucketsFor(runs.length, chart.div.clientWidth || 500, withTimes);
    // One request for every run of this chart, not one per run; its arrays as base64 typed arrays, which cost the
    // server and this page far less than JSON number lists (lib/typed_arrays.js).
    const data = await api.graphql(`query Overlay($ids: [ID!]!, $name: String!, $n: Int, $x: String) {
      seriesBatch(experimentIds: $ids, name: $name, maxPoints: $n, x: $x, encoding: "base64") { experimentId count steps values ${withTimes ? "times" : ""} } }`,
    { ids: runs.map((r) => r.id), name: chart.metric, n: maxPoints, x: withTimes ? "time" : "step" });
    if (number !== state.request) return;  // the filter or the x axis changed meanwhile
    chart.runs = runs;
    chart.answers = data.seriesBatch.map(decodeEnvelope);
    chart.div.dataset.buckets = String(maxPoints);
    const stepless = chart.answers.some((a) => a && a.steps.length) && chart.answers.every((a) => !a || a.steps.every((s) => s === null));
    if (stepless !== Boolean(chart.stepless)) {
      chart.stepless = stepless;
      if (effectiveXMode(state.controls.xMode, stepless) !== "step" && !withTimes) { await load(chart, number); return; }
    }
    draw(chart);
  }

  function draw(chart) {
    const { colorOf, legend: items } = colorBy(chart.runs, state.colorKey);
    const series = [], rowsOf = [];
    chart.runs.forEach((row, i) => {
      const answer = chart.answers[i];
      if (!answer) return;
      series.push({ id: row.id, label: labelOf(row), color: colorOf(row), steps: answer.steps, values: answer.values, count: answer.count,
                    times: answer.times || null, start: row.startedAt });
      rowsOf.push(row);
    });
    const groups = state.group && state.colorKey
      ? groupByValue(rowsOf, state.colorKey).map(({ value, members }) => ({
        label: `${state.colorKey}=${formatValue(value)}`, color: series[members[0]].color, members }))
      : null;
    chart.overlay.setData(series, state.controls, groups);
    const points = chart.answers.reduce((n, a) => n + (a ? a.count : 0), 0);
    chart.count.textContent = `${series.length} runs${groups ? ` in ${groups.length} groups` : ""}, ${points} points`;
    legend.replaceChildren(...items.map(([text, colour]) => el("span", { class: "legend-item" },
      el("span", { class: "swatch", style: `background:${colour}` }), text)));
  }

  function drawAll() {
    for (const chart of state.charts.values()) if (chart.runs.length || chart.answers.length) draw(chart);
  }

  return { setRows, destroy() { state.request++; } };
}
