// The compare view (#/compare?ids=...): one metric of several experiments overlaid, and the parameters that differ.

import { api } from "./api.js";
import { controlsToolbar, defaultControls } from "./chart_controls.js";
import { MetricChart } from "./charts.js";
import { el, setBreadcrumbs } from "./dom.js";
import { formatValue } from "./lib/format.js";
import { flatten, varyingKeys } from "./lib/rows.js";
import { feedChart } from "./metric_series.js";

export async function compareView(main, ids, initialMetric) {
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
  let metric = initialMetric && allMetrics.includes(initialMetric) ? initialMetric : (common[0] || allMetrics[0]);

  const select = el("select", { id: "compare-metric" }, allMetrics.map((m) => el("option", { value: m }, common.includes(m) ? m : `${m} (not in all)`)));
  const controls = defaultControls();
  const toolbar = controlsToolbar(controls, (_, what) => chart && chart.update(what).catch(console.error));
  const chartDiv = el("div", { class: "chart tall", id: "compare-chart" });
  main.append(el("h1", {}, `Compare ${experiments.length} experiments`),
    el("div", { class: "toolbar" }, select, toolbar), el("div", { class: "chart-card" }, chartDiv));

  const diffTable = el("table", { class: "grid", id: "compare-params" },
    el("thead", {}, el("tr", {}, el("th", {}, "experiment"), differing.map((k) => el("th", { class: "param" }, k)))),
    el("tbody", {}, experiments.map((e) => el("tr", {}, el("td", {}, el("a", { href: `#/exp/${e.id}` }, e.prefix)),
      differing.map((k) => el("td", {}, formatValue(e.flatParams[k])))))));
  main.append(el("h2", {}, differing.length ? "Parameters that differ" : "All parameters are equal"), el("div", { class: "table-wrap" }, diffTable));

  let chart = null;
  function draw() {
    if (chart) chart.destroy();
    if (!metric) { chartDiv.textContent = "These experiments have no metrics."; return; }
    select.value = metric;
    const withMetric = experiments.filter((e) => e.metricNames.includes(metric));
    chart = new MetricChart(chartDiv, withMetric.map((e) => ({ experimentId: e.id, metric, label: labelOf(e) })), { controls });
    feedChart(chart)().catch((error) => { chartDiv.textContent = `Could not load: ${error.message}`; });
  }
  select.addEventListener("change", () => {
    metric = select.value;
    history.replaceState(null, "", `#/compare?ids=${ids.join(",")}&metric=${encodeURIComponent(metric)}`);
    draw();
  });
  draw();
  return { destroy() { if (chart) chart.destroy(); } };
}
