// Metric charts: lazy plotly.js loading and MetricChart (min/max-bucketed series, zoom refetch, wall-time axis).

import { api } from "./api.js";
import { el, plotlyText } from "./util.js";

// plotly.js (1.2 MB basic bundle, or the full 4.8 MB one): index.html only preloads it (download, no execution), and
// it runs when the first chart has
// sent its series request, so the browser evaluates it while the server reads. Only drawing waits for it; the
// navigator, tables, headers and logs never do.
const PLOTLY_URL = "/static/vendor/plotly.min.js";
let plotlyPromise = null;

export function loadPlotly() {
  if (!plotlyPromise) {
    plotlyPromise = new Promise((resolve, reject) => {
      if (window.Plotly) { resolve(window.Plotly); return; }
      const failed = () => reject(new Error(
        `the chart library did not load: install the server extra (pip install 'ml-dash[server]') so ${PLOTLY_URL} exists`));
      const script = el("script", { src: PLOTLY_URL, async: true });
      script.addEventListener("load", () => (window.Plotly ? resolve(window.Plotly) : failed()));
      script.addEventListener("error", failed);
      document.head.append(script);
    });
    plotlyPromise.catch(() => { plotlyPromise = null; });  // a later chart may try again
  }
  return plotlyPromise;
}

// A chart of one or more metric series: each series is {experimentId, metric, label}. It asks the server for about
// one min/max bucket per horizontal pixel, so a spike anywhere in a 10M-point series still shows; zooming asks again
// for just the visible step range, which at that scale is the full-resolution data.
export class MetricChart {
  constructor(container, series, { xMode = "step", title = "" } = {}) {
    this.container = container;
    this.series = series;
    this.xMode = xMode;
    this.title = title;
    this.stepRange = null;  // null: whole series; [min, max]: zoomed in
    this.loaded = [];  // last answers
    this.stepTimes = [];  // per series: {steps, timestamps} anchors for the wall-time axis
    this.renders = 0;
    this.requestNumber = 0;
    this.plotted = false;
  }

  pixelWidth() {
    return Math.max(100, Math.round(this.container.clientWidth || 600));
  }

  async load() {
    const number = ++this.requestNumber;
    const varDefs = ["$maxPoints: Int", "$stepMin: Float", "$stepMax: Float"];
    const fields = [];
    const variables = { maxPoints: this.pixelWidth(), stepMin: null, stepMax: null };
    if (this.stepRange) [variables.stepMin, variables.stepMax] = this.stepRange;
    this.series.forEach((s, i) => {
      varDefs.push(`$e${i}: ID!`, `$m${i}: String!`);
      variables[`e${i}`] = s.experimentId;
      variables[`m${i}`] = s.metric;
      fields.push(`s${i}: experiment(id: $e${i}) { metric(name: $m${i}, maxPoints: $maxPoints, stepMin: $stepMin, stepMax: $stepMax) { count steps values min max } }`);
    });
    // The requests leave first (in this same task); only then may plotly start evaluating.
    const [data, stepTimes] = await Promise.all([
      api.graphql(`query Series(${varDefs.join(", ")}) { ${fields.join(" ")} }`, variables),
      this.xMode === "time" ? this.fetchStepTimes() : null,
      loadPlotly(),
    ]);
    if (number !== this.requestNumber) return;  // a newer request (zoom, live refresh) superseded this one
    this.loaded = this.series.map((s, i) => (data[`s${i}`] && data[`s${i}`].metric) || { count: 0, steps: [], values: [] });
    if (stepTimes) this.stepTimes = stepTimes;
    this.draw();
  }

  // Series answers carry steps only; a few thousand (step, time) anchors place every point on a wall-time axis.
  fetchStepTimes() {
    return Promise.all(this.series.map((s) => api.rest(
      `/experiments/${encodeURIComponent(s.experimentId)}/step-times?name=${encodeURIComponent(s.metric)}&max_points=2000`)
      .catch(() => ({ steps: [], timestamps: [] }))));
  }

  draw() {
    const traces = this.series.map((s, i) => {
      const m = this.loaded[i];
      const x = this.xMode === "time" ? m.steps.map((step) => {
        const t = interpolate(this.stepTimes[i] ? this.stepTimes[i].steps : [], this.stepTimes[i] ? this.stepTimes[i].timestamps : [], step);
        return t === null ? null : t * 1000;
      }) : m.steps;
      return { type: "scatter", mode: m.values.length < 2 ? "markers" : "lines", name: plotlyText(s.label || s.metric), x, y: m.values,
               connectgaps: false, line: { width: 1.5 }, hovertemplate: "%{y}<extra>%{fullData.name}</extra>" };
    });
    const layout = {
      margin: { l: 50, r: 10, t: 8, b: 32 }, showlegend: this.series.length > 1,
      legend: { orientation: "h", y: -0.18 },
      xaxis: { title: { text: plotlyText(this.xMode === "time" ? "" : "step") }, type: this.xMode === "time" ? "date" : "linear" },
      yaxis: { autorange: true }, uirevision: this.xMode, hovermode: "x",
    };
    // A constant series would get an arbitrary ±1 range around it, which reads as "zero"; centre it instead.
    const lows = this.loaded.map((m) => m.min).filter((v) => v !== null && v !== undefined);
    const highs = this.loaded.map((m) => m.max).filter((v) => v !== null && v !== undefined);
    if (lows.length && Math.min(...lows) === Math.max(...highs)) {
      const v = lows[0], pad = Math.abs(v) * 0.5 || 1;
      layout.yaxis = { range: [v - pad, v + pad] };
    }
    if (this.stepRange && this.xRange) layout.xaxis.range = this.xRange;
    else layout.xaxis.autorange = true;
    const config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
    Plotly.react(this.container, traces, layout, config);
    if (!this.plotted) {
      this.plotted = true;
      this.container.on("plotly_relayout", (event) => this.onRelayout(event));
    }
    this.renders++;
    const counts = this.loaded.map((m) => m.count);
    this.container.dataset.count = counts.join(",");
    this.container.dataset.drawn = this.loaded.map((m) => m.values.length).join(",");
    this.container.dataset.renders = String(this.renders);
    this.container.dataset.state = "ready";
    if (this.onDrawn) this.onDrawn(this);
  }

  onRelayout(event) {
    if (event["xaxis.autorange"] || event.autosize) {
      if (this.stepRange) { this.stepRange = null; this.xRange = null; this.load(); }
      return;
    }
    const low = event["xaxis.range[0]"] ?? (event["xaxis.range"] || [])[0];
    const high = event["xaxis.range[1]"] ?? (event["xaxis.range"] || [])[1];
    if (low === undefined || high === undefined) return;
    this.xRange = [low, high];
    this.stepRange = this.xMode === "time" ? this.stepsWithin(toMillis(low) / 1000, toMillis(high) / 1000) : [Math.floor(low), Math.ceil(high)];
    this.load();
  }

  // Wall-time zoom: the server filters by step, so turn the visible time window back into a step range.
  stepsWithin(t0, t1) {
    let lo = Infinity, hi = -Infinity;
    for (const anchors of this.stepTimes) {
      const a = interpolate(anchors.timestamps, anchors.steps, t0), b = interpolate(anchors.timestamps, anchors.steps, t1);
      if (a !== null) lo = Math.min(lo, Math.floor(a));
      if (b !== null) hi = Math.max(hi, Math.ceil(b));
    }
    return lo <= hi ? [lo, hi] : this.stepRange;
  }

  setXMode(mode) {
    this.xMode = mode;
    this.stepRange = null;
    this.xRange = null;
    return this.load();
  }

  destroy() {
    this.requestNumber++;
    if (this.plotted) Plotly.purge(this.container);
    delete this.container.dataset.state;
  }
}

// Piecewise-linear y(x) through sorted anchors xs → ys, extended linearly past both ends; null without anchors.
function interpolate(xs, ys, x) {
  if (x === null || x === undefined || !xs.length) return null;
  if (xs.length === 1) return ys[0];
  let lo = 0, hi = xs.length - 1;
  if (x <= xs[0]) hi = 1;
  else if (x >= xs[hi]) lo = hi - 1;
  else {
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] <= x) lo = mid; else hi = mid;
    }
  }
  const span = xs[hi] - xs[lo];
  return span ? ys[lo] + ((x - xs[lo]) * (ys[hi] - ys[lo])) / span : ys[lo];
}

function toMillis(value) {
  if (typeof value === "number") return value;
  return Date.parse(String(value).replace(" ", "T") + "Z");  // Plotly writes date ranges as UTC without a zone
}
