// The experiment page's Metrics section: the shared chart controls and one MetricChart per metric, grouped by
// namespace (train.*, val.*, train/*), each fed by metric_series.js.

import { controlsToolbar, defaultControls, yRangeControl } from "./chart_controls.js";
import { MetricChart } from "./charts.js";
import { el } from "./dom.js";
import { supersededToggle } from "./experiment_runs.js";
import { formatValue } from "./lib/format.js";
import { groupByPrefix } from "./lib/rows.js";
import { feedChart } from "./metric_series.js";

export class MetricsSection {
  constructor(section, experimentId) {
    this.section = section;
    this.experimentId = experimentId;
    this.controls = defaultControls();
    this.charts = new Map();  // metric name → {chart, load}
    this.offered = false;  // whether the "show superseded" toggle is shown (some run is superseded)
    this.showSuperseded = false;
    this.rendered = null;  // render()'s arguments, to lay out again when the toggle comes or goes
  }

  // Offer the "show superseded" toggle (experiment_runs.js) or take it away; lays the section out again on a change.
  offerSuperseded(yes) {
    if (yes === this.offered) return;
    this.offered = yes;
    if (!yes) this.showSuperseded = false;
    if (this.rendered) this.render(...this.rendered);
  }

  // A chart's series: the metric's history, and its superseded points drawn faintly when the toggle is on.
  seriesOf(name) {
    const main = { experimentId: this.experimentId, metric: name, label: name };
    return this.showSuperseded ? [main, { ...main, label: `${name} (superseded)`, superseded: true, colourOf: 0 }] : [main];
  }

  // Lay out one chart per metric and send all their series requests. summary: the experiment's metricSummary
  // ([{name, last, min, max, count}]); a metric of one point (an end-of-training number such as train_runtime)
  // would be an invisible chart, so it is shown as a number in the summary block instead.
  render(metricNames, summary = []) {
    const single = new Map(summary.filter((m) => m.count === 1).map((m) => [m.name, m]));
    const charted = metricNames.filter((name) => !single.has(name));
    this.rendered = [metricNames, summary];
    this.destroy();
    const toolbar = controlsToolbar(this.controls, (_, what) => {
      for (const { chart } of this.charts.values()) chart.update(what).catch(console.error);
    });
    const toggle = this.offered ? supersededToggle(this.showSuperseded, (on) => {
      this.showSuperseded = on;
      for (const [metric, { chart, load }] of this.charts) { chart.series = this.seriesOf(metric); load().catch(console.error); }
    }) : null;
    this.section.replaceChildren(el("h2", {}, "Metrics"), el("div", { class: "toolbar" }, toolbar, toggle,
      el("span", { class: "muted" }, "drag to zoom (fetches full resolution), double-click to reset")));
    if (!metricNames.length) this.section.append(el("p", { class: "muted" }, "No metrics yet."));
    if (single.size) {
      this.section.append(el("div", { class: "metric-summary", id: "metric-summary" },
        [...single.values()].map((m) => el("div", { class: "summary-item", "data-metric": m.name },
          el("span", { class: "summary-name" }, m.name), el("b", { class: "summary-value" }, formatValue(m.last))))));
    }
    for (const [group, names] of groupByPrefix(charted)) {
      const grid = el("div", { class: "chart-group" });
      this.section.append(el("div", { class: "metric-group", "data-group": group }, group ? el("h3", {}, `${names[0].slice(0, group.length + 1)}*`) : null, grid));
      for (const name of names) {
        const countLabel = el("span", { class: "count" });
        const div = el("div", { class: "chart", "data-metric": name });
        const chart = new MetricChart(div, this.seriesOf(name), { controls: this.controls });
        const yControl = yRangeControl((yRange) => chart.setYRange(yRange));
        grid.append(el("div", { class: "chart-card" }, el("div", { class: "title" }, el("span", {}, name), el("span", {}, countLabel, " ", yControl)), div));
        chart.onDrawn = (c) => {
          const m = c.loaded[0];
          countLabel.textContent = m.count > m.values.length ? `${m.values.length} of ${m.count} points (min/max envelope)` : `${m.count} points`;
        };
        this.charts.set(name, { chart, load: feedChart(chart) });
      }
    }
    // The charts are in the document, so each can read its width (one layout) and ask for as many points as it has
    // pixels. All of the page's series requests leave together, in this task, before any answer is awaited.
    for (const { chart, load } of this.charts.values()) load().catch((error) => showChartError(chart, error));
  }

  // New data landed: read every chart again (its zoom kept).
  reload() {
    for (const { load } of this.charts.values()) load().catch(console.error);
  }

  destroy() {
    for (const { chart } of this.charts.values()) chart.destroy();
    this.charts.clear();
  }
}

function showChartError(chart, error) {
  chart.container.textContent = `Could not load: ${error.message}`;
  chart.container.classList.add("error");
}
