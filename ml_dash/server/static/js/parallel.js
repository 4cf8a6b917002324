// Parallel coordinates over the parameters that vary plus one metric (last, min or max), and a parameter-vs-metric
// scatter; brushing an axis narrows the runs table, clicking a line or a point opens the run. Plain SVG.

import { api } from "./api.js";
import { el, svg } from "./dom.js";
import { formatValue } from "./lib/format.js";
import { varyingKeys } from "./lib/rows.js";
import { axisFor, rampColor } from "./lib/scales.js";

const HEIGHT = 300, PAD = { t: 28, b: 24, l: 40, r: 70 };

export function parallelPanel(container, { onBrush, onOpen }) {
  const state = { rows: [], metric: "", agg: "last", values: new Map(), brushes: new Map(), request: 0, scatterKey: "" };
  const metricSelect = el("select", { id: "pc-metric" });
  const aggSelect = el("select", { id: "pc-agg" }, ["last", "min", "max"].map((a) => el("option", { value: a }, a)));
  const scatterSelect = el("select", { id: "scatter-param" });
  const status = el("span", { class: "muted", id: "pc-status" });
  const plot = el("div", { class: "panel parallel", id: "parallel" });
  const scatter = el("div", { class: "panel scatter", id: "scatter" });
  container.append(el("div", { class: "toolbar" }, el("label", { class: "control" }, "metric ", metricSelect, " ", aggSelect),
    el("label", { class: "control" }, "scatter x ", scatterSelect), status,
    el("span", { class: "muted" }, "drag along an axis to filter the table; click an axis to clear")), plot, scatter);
  metricSelect.addEventListener("change", () => { state.metric = metricSelect.value; load(); });
  aggSelect.addEventListener("change", () => { state.agg = aggSelect.value; load(); });
  scatterSelect.addEventListener("change", () => { state.scatterKey = scatterSelect.value; drawScatter(); });

  async function setRows(rows) {
    state.rows = rows;
    const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.lastMetrics)))].sort();
    if (!metrics.includes(state.metric)) state.metric = metrics.find((m) => /loss/.test(m)) || metrics[0] || "";
    metricSelect.replaceChildren(...metrics.map((m) => el("option", { value: m }, m)));
    metricSelect.value = state.metric;
    state.keys = varyingKeys(rows).slice(0, 16);
    if (!state.keys.includes(state.scatterKey)) state.scatterKey = state.keys[0] || "";
    scatterSelect.replaceChildren(...state.keys.map((k) => el("option", { value: k }, k)));
    scatterSelect.value = state.scatterKey;
    await load();
  }

  // last: the runs' lastMetrics; min/max: one batched read of each run's series extremes (maxPoints 1: one bucket).
  async function load() {
    const number = ++state.request;
    const values = new Map();
    if (state.agg === "last") for (const r of state.rows) values.set(r.id, r.lastMetrics[state.metric]);
    else if (state.metric) {
      const withMetric = state.rows.filter((r) => state.metric in r.lastMetrics).slice(0, 1000);
      const data = await api.graphql(`query Extremes($ids: [ID!]!, $name: String!) { seriesBatch(experimentIds: $ids, name: $name, maxPoints: 1) { experimentId min max } }`,
        { ids: withMetric.map((r) => r.id), name: state.metric });
      for (const s of data.seriesBatch) if (s) values.set(s.experimentId, s[state.agg]);
    }
    if (number !== state.request) return;
    state.values = values;
    state.brushes.clear();
    drawParallel();
    drawScatter();
    onBrush(null);
  }

  function metricLabel() { return `${state.agg}(${state.metric})`; }
  function valueOf(row, key) { return key === null ? state.values.get(row.id) : row.flatParams[key]; }

  function drawParallel() {
    const width = Math.max(400, plot.clientWidth || 800);
    const keys = [...state.keys, null];  // null: the metric axis, last
    const axes = keys.map((k) => ({ ...axisFor(k === null ? metricLabel() : k, state.rows.map((r) => valueOf(r, k))), source: k }));
    const xAt = (i) => PAD.l + (axes.length < 2 ? 0 : (i * (width - PAD.l - PAD.r)) / (axes.length - 1));
    const yAt = (t) => PAD.t + (1 - t) * (HEIGHT - PAD.t - PAD.b);
    const metricAxis = axes[axes.length - 1];
    const root = svg("svg", { width, height: HEIGHT, class: "pc-svg" });
    const lines = svg("g", { class: "pc-lines" });
    root.append(lines);
    state.lineOf = new Map();
    for (const row of state.rows) {
      let d = "", pen = "M";
      axes.forEach((axis, i) => {
        const t = axis.at(valueOf(row, axis.source));
        if (t === null || t === undefined) { pen = "M"; return; }
        d += `${pen}${xAt(i).toFixed(1)},${yAt(t).toFixed(1)}`;
        pen = "L";
      });
      const colour = rampColor(metricAxis.at(valueOf(row, null)));
      const path = svg("path", { d, class: "pc-line", stroke: colour, "data-experiment": row.id },
        svg("title", {}, `${row.prefix}: ${metricLabel()} = ${formatValue(valueOf(row, null))}`));
      path.addEventListener("click", () => onOpen(row.id));
      lines.append(path);
      state.lineOf.set(row.id, path);
    }
    axes.forEach((axis, i) => {
      const x = xAt(i);
      const g = svg("g", { class: "pc-axis", "data-axis": axis.key });
      g.append(svg("line", { x1: x, x2: x, y1: PAD.t, y2: HEIGHT - PAD.b }),
        svg("text", { x, y: PAD.t - 10, "text-anchor": i === axes.length - 1 ? "end" : "middle", class: "pc-title" }, axis.key));
      const ticks = axis.numeric ? axis.ticks : axis.ticks.slice(0, 12);
      const last = i === axes.length - 1;  // the metric axis: labels on its left, inside the picture
      for (const v of ticks) g.append(svg("text", { x: last ? x - 4 : x + 4, y: yAt(axis.at(v)) + 3, class: "pc-tick", "text-anchor": last ? "end" : "start" }, formatValue(v)));
      const brush = svg("rect", { x: x - 6, y: PAD.t, width: 12, height: 0, class: "pc-brush" });
      const target = svg("rect", { x: x - 12, y: PAD.t - 4, width: 24, height: HEIGHT - PAD.t - PAD.b + 8, class: "pc-target" });
      g.append(brush, target);
      brushable(target, brush, (range) => {
        if (range) state.brushes.set(i, { axis, range: range.map((y) => 1 - (y - PAD.t) / (HEIGHT - PAD.t - PAD.b)) });
        else state.brushes.delete(i);
        applyBrushes();
      });
      root.append(g);
    });
    plot.replaceChildren(root);
    plot.dataset.lines = String(state.rows.length);
    plot.dataset.state = "ready";
  }

  function applyBrushes() {
    const passing = state.rows.filter((row) => [...state.brushes.values()].every(({ axis, range: [a, b] }) => {
      const t = axis.at(valueOf(row, axis.source));
      return t !== null && t !== undefined && t >= Math.min(a, b) - 1e-9 && t <= Math.max(a, b) + 1e-9;
    }));
    const ids = new Set(passing.map((r) => r.id));
    for (const [id, path] of state.lineOf) path.classList.toggle("dimmed", !ids.has(id));
    plot.dataset.brushed = state.brushes.size ? String(passing.length) : "";
    status.textContent = state.brushes.size ? `${passing.length} of ${state.rows.length} runs in the brushed ranges` : "";
    onBrush(state.brushes.size ? passing : null);
  }

  function drawScatter() {
    const key = state.scatterKey;
    if (!key) { scatter.replaceChildren(el("span", { class: "muted" }, "No parameter varies between these runs.")); return; }
    const width = Math.max(300, Math.min(700, scatter.clientWidth || 600)), height = 260;
    const xAxis = axisFor(key, state.rows.map((r) => r.flatParams[key]));
    const yAxis = axisFor(metricLabel(), state.rows.map((r) => state.values.get(r.id)));
    const px = (t) => 50 + t * (width - 70), py = (t) => 14 + (1 - t) * (height - 44);
    const root = svg("svg", { width, height, class: "sc-svg" },
      svg("rect", { x: 50, y: 14, width: width - 70, height: height - 44, class: "sc-frame" }),
      svg("text", { x: width - 20, y: height - 4, "text-anchor": "end", class: "pc-title" }, key),
      svg("text", { x: 4, y: 10, class: "pc-title" }, metricLabel()));
    for (const v of xAxis.ticks.slice(0, 12)) root.append(svg("text", { x: px(xAxis.at(v)), y: height - 18, "text-anchor": "middle", class: "pc-tick" }, formatValue(v)));
    for (const v of yAxis.ticks.slice(0, 12)) root.append(svg("text", { x: 46, y: py(yAxis.at(v)) + 3, "text-anchor": "end", class: "pc-tick" }, formatValue(v)));
    let shown = 0;
    for (const row of state.rows) {
      const tx = xAxis.at(row.flatParams[key]), ty = yAxis.at(state.values.get(row.id));
      if (tx === null || ty === null || tx === undefined || ty === undefined) continue;
      const dot = svg("circle", { cx: px(tx), cy: py(ty), r: 4, class: "sc-point", fill: rampColor(ty), "data-experiment": row.id },
        svg("title", {}, `${row.prefix}: ${key} = ${formatValue(row.flatParams[key])}, ${metricLabel()} = ${formatValue(state.values.get(row.id))}`));
      dot.addEventListener("click", () => onOpen(row.id));
      root.append(dot);
      shown++;
    }
    scatter.replaceChildren(root);
    scatter.dataset.points = String(shown);
  }

  return { setRows, destroy() { state.request++; } };
}

// Drag vertically on an axis to brush [y0, y1] (pixels); a click without a drag clears it.
function brushable(target, brush, onChange) {
  let start = null;
  const yOf = (event) => event.clientY - target.ownerSVGElement.getBoundingClientRect().top;
  target.addEventListener("pointerdown", (event) => { start = yOf(event); target.setPointerCapture(event.pointerId); });
  target.addEventListener("pointermove", (event) => {
    if (start === null) return;
    const y = yOf(event);
    brush.setAttribute("y", Math.min(start, y)); brush.setAttribute("height", Math.abs(y - start));
  });
  target.addEventListener("pointerup", (event) => {
    if (start === null) return;
    const y = yOf(event), from = start;
    start = null;
    if (Math.abs(y - from) < 3) { brush.setAttribute("height", 0); onChange(null); return; }
    onChange([from, y]);
  });
}
