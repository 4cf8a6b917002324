// The compare view (#/compare?ids=...&metric=a&metric=b): several experiments overlaid, one chart per metric ticked
// in the metric list, and the parameters that differ.

import { api } from "./api.js";
import { controlsToolbar, defaultControls } from "./chart_controls.js";
import { MetricChart } from "./charts.js";
import { el, setBreadcrumbs } from "./dom.js";
import { formatValue } from "./lib/format.js";
import { flatten, varyingKeys } from "./lib/rows.js";
import { feedChart } from "./metric_series.js";

export async function compareView(main, ids, initialMetrics = []) {
  setBreadcrumbs(["compare", null]);
  if (ids.length < 1) {
    main.append(el("p", { class: "muted" }, "Select experiments in a runs table, then press Compare."));
    return null;
  }
  const varDefs = ids.map((_, i) => `$e${i}: ID!`).join(", ");
  const fields = ids.map((_, i) => `x${i}: experiment(id: $e${i}) { id namespace workspace directory prefix status params metricNames }`).join(" ");
  const data = await api.graphql(`query Compare(${varDefs}) { ${fields} }`, Object.fromEntries(ids.map((id, i) => [`e${i}`, id])));
  const experiments = ids.map((_, i) => data[`x${i}`]).filter(Boolean);
  for (const e of experiments) e.flatParams = flatten(e.params || {});

  // The legend names a run by its prefix plus only the parameters that tell the selected runs apart.
  const differing = varyingKeys(experiments);
  const prefixes = experiments.map((e) => e.prefix);
  const prefixIsUnique = new Set(prefixes).size === prefixes.length;
  const labelOf = (e) => {
    const name = prefixIsUnique ? e.prefix : `${e.directory ? `${e.directory}/` : ""}${e.prefix}`;
    const diff = differing.map((k) => `${k}=${formatValue(e.flatParams[k])}`).join(", ");
    return diff ? `${name} (${diff})` : name;
  };

  const allMetrics = [...new Set(experiments.flatMap((e) => e.metricNames))].sort();
  const common = allMetrics.filter((m) => experiments.every((e) => e.metricNames.includes(m)));
  const chosen = new Set(initialMetrics.filter((m) => allMetrics.includes(m)));
  if (!chosen.size && (common[0] || allMetrics[0])) chosen.add(common[0] || allMetrics[0]);

  const boxes = allMetrics.map((m) => {
    const box = el("input", { type: "checkbox", class: "compare-metric-box", value: m });
    box.checked = chosen.has(m);
    box.addEventListener("change", () => { box.checked ? chosen.add(m) : chosen.delete(m); draw(); });
    return el("label", { class: "compare-metric", "data-metric": m }, box, " ", common.includes(m) ? m : `${m} (not in all)`);
  });
  const metricSearch = el("input", { type: "search", id: "compare-metric-search", placeholder: "find a metric…" });
  metricSearch.addEventListener("input", () => {
    const q = metricSearch.value.toLowerCase();
    for (const label of boxes) label.hidden = !!q && !label.dataset.metric.toLowerCase().includes(q);
  });
  const controls = defaultControls();
  const toolbar = controlsToolbar(controls, (_, what) => { for (const chart of charts.values()) chart.update(what).catch(console.error); });
  const chartsDiv = el("div", { class: "chart-group", id: "compare-charts" });
  main.append(el("h1", {}, `Compare ${experiments.length} experiments`),
    el("details", { class: "panel", id: "compare-metrics", open: true },
      el("summary", {}, `Metrics (${allMetrics.length}): tick the ones to chart`), metricSearch, el("div", { class: "compare-metric-list" }, boxes)),
    el("div", { class: "toolbar" }, toolbar), chartsDiv);

  const diffTable = el("table", { class: "grid", id: "compare-params" },
    el("thead", {}, el("tr", {}, el("th", {}, "experiment"), differing.map((k) => el("th", { class: "param" }, k)))),
    el("tbody", {}, experiments.map((e) => el("tr", {}, el("td", {}, el("a", { href: `#/exp/${e.id}` }, e.prefix)),
      differing.map((k) => el("td", {}, formatValue(e.flatParams[k])))))));
  main.append(el("h2", {}, differing.length ? "Parameters that differ" : "All parameters are equal"), el("div", { class: "table-wrap" }, diffTable));

  const charts = new Map();  // metric → its MetricChart, in the list's order
  function draw() {
    const wanted = allMetrics.filter((m) => chosen.has(m));
    history.replaceState(null, "", `#/compare?ids=${ids.join(",")}${wanted.map((m) => `&metric=${encodeURIComponent(m)}`).join("")}`);
    for (const [m, chart] of charts) if (!chosen.has(m)) { chart.destroy(); charts.delete(m); }
    if (!allMetrics.length) { chartsDiv.replaceChildren(el("p", { class: "muted" }, "These experiments have no metrics.")); return; }
    const cards = wanted.map((m) => {
      if (charts.has(m)) return charts.get(m).container.parentElement;
      const div = el("div", { class: "chart tall compare-chart", "data-metric": m });
      const card = el("div", { class: "chart-card" }, el("div", { class: "title" }, el("span", {}, m)), div);
      chartsDiv.append(card);  // in the document before the chart reads its width
      const withMetric = experiments.filter((e) => e.metricNames.includes(m));
      const chart = new MetricChart(div, withMetric.map((e) => ({ experimentId: e.id, metric: m, label: labelOf(e) })), { controls });
      charts.set(m, chart);
      feedChart(chart)().catch((error) => { div.textContent = `Could not load: ${error.message}`; });
      return card;
    });
    chartsDiv.replaceChildren(...cards);
  }
  draw();
  return { destroy() { for (const chart of charts.values()) chart.destroy(); } };
}
