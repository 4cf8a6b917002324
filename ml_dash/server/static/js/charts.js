// Metric charts: lazy plotly.js loading and MetricChart (min/max-bucketed series, zoom refetch, time axes, smoothing).

import { api } from "./api.js";
import { bucketsFor, categoricalColor, defaultControls, ema, relativeUnit } from "./chart_controls.js";
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
  // controls ({smoothing, logY, xMode}, chart_controls.js) may be shared by all charts of a view.
  constructor(container, series, { xMode = "step", title = "", controls = null } = {}) {
    this.container = container;
    this.series = series;
    this.controls = controls || { ...defaultControls(), xMode };
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
    // Many runs' same metric (compare): one seriesBatch request, however many runs (aliases stopped near 65).
    if (this.series.length > 1 && this.series.every((s) => s.metric === this.series[0].metric)) return this.loadBatch(number);
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
      this.xMode !== "step" ? this.fetchStepTimes() : null,
      loadPlotly(),
    ]);
    if (number !== this.requestNumber) return;  // a newer request (zoom, live refresh) superseded this one
    this.loaded = this.series.map((s, i) => (data[`s${i}`] && data[`s${i}`].metric) || { count: 0, steps: [], values: [] });
    if (stepTimes) this.stepTimes = stepTimes;
    this.draw();
  }

  async loadBatch(number) {
    const withTimes = this.xMode !== "step";
    const [stepMin, stepMax] = this.stepRange || [null, null];
    const [data] = await Promise.all([
      api.graphql(`query SeriesBatch($ids: [ID!]!, $name: String!, $n: Int, $x: String, $stepMin: Float, $stepMax: Float) {
        seriesBatch(experimentIds: $ids, name: $name, maxPoints: $n, x: $x, stepMin: $stepMin, stepMax: $stepMax) {
          count steps values min max ${withTimes ? "times" : ""} } }`,
      { ids: this.series.map((s) => s.experimentId), name: this.series[0].metric, n: bucketsFor(this.series.length, this.pixelWidth(), withTimes),
        x: withTimes ? "time" : "step", stepMin, stepMax }),
      loadPlotly(),
    ]);
    if (number !== this.requestNumber) return;
    this.loaded = data.seriesBatch.map((m) => m || { count: 0, steps: [], values: [] });
    // The answer's own (step, time) pairs are the time axis' anchors; a zoomed answer keeps the whole run's ones.
    if (withTimes && (!this.stepRange || !this.stepTimes.length)) this.stepTimes = this.loaded.map(anchorsOf);
    this.draw();
  }

  // Series answers carry steps only; a few thousand (step, time) anchors place every point on a wall-time axis.
  fetchStepTimes() {
    return Promise.all(this.series.map((s) => api.rest(
      `/experiments/${encodeURIComponent(s.experimentId)}/step-times?name=${encodeURIComponent(s.metric)}&max_points=2000`)
      .catch(() => ({ steps: [], timestamps: [] }))));
  }

  get xMode() { return this.controls.xMode; }

  // Wall time of a step of series i (seconds), from its anchors; null without them.
  timeOf(i, step) {
    const anchors = this.stepTimes[i];
    return interpolate(anchors ? anchors.steps : [], anchors ? anchors.timestamps : [], step);
  }

  startOf(i) {
    const anchors = this.stepTimes[i];
    return anchors && anchors.timestamps.length ? anchors.timestamps[0] : null;
  }

  relativeUnit() {
    const spans = this.stepTimes.map((a) => (a && a.timestamps.length ? a.timestamps[a.timestamps.length - 1] - a.timestamps[0] : 0));
    return relativeUnit(Math.max(0, ...spans));
  }

  xValues(i, steps) {
    if (this.xMode === "step") return steps;
    if (this.xMode === "time") return steps.map((step) => { const t = this.timeOf(i, step); return t === null ? null : t * 1000; });
    const t0 = this.startOf(i), unit = this.relativeUnit().seconds;
    return steps.map((step) => { const t = this.timeOf(i, step); return t === null || t0 === null ? null : (t - t0) / unit; });
  }

  draw() {
    const { smoothing, logY } = this.controls;
    const traces = [];
    this.series.forEach((s, i) => {
      const m = this.loaded[i];
      const colour = categoricalColor(i);
      const base = { type: "scatter", mode: m.values.length < 2 ? "markers" : "lines", name: plotlyText(s.label || s.metric),
                     x: this.xValues(i, m.steps), connectgaps: false, marker: { color: colour } };
      const hover = { hovertemplate: "%{y}<extra>%{fullData.name}</extra>" };
      if (smoothing > 0) {
        // The raw line stays, faint, behind the smoothed one (as TensorBoard and W&B draw it): a spike is never hidden.
        traces.push({ ...base, y: m.values, showlegend: false, hoverinfo: "skip", opacity: 0.25, line: { width: 1, color: colour }, meta: "raw" });
        traces.push({ ...base, ...hover, y: ema(m.values, smoothing), line: { width: 1.5, color: colour }, meta: "smoothed" });
      } else {
        traces.push({ ...base, ...hover, y: m.values, line: { width: 1.5, color: colour } });
      }
    });
    const xTitle = this.xMode === "step" ? "step" : this.xMode === "time" ? "" : this.relativeUnit().label;
    const layout = {
      margin: { l: 50, r: 10, t: 8, b: 32 }, showlegend: this.series.length > 1,
      legend: { orientation: "h", y: -0.18 },
      xaxis: { title: { text: plotlyText(xTitle) }, type: this.xMode === "time" ? "date" : "linear" },
      yaxis: { autorange: true, type: logY ? "log" : "linear" }, uirevision: `${this.xMode}:${logY}`, hovermode: "x",
    };
    // A constant series would get an arbitrary ±1 range around it, which reads as "zero"; centre it instead.
    const lows = this.loaded.map((m) => m.min).filter((v) => v !== null && v !== undefined);
    const highs = this.loaded.map((m) => m.max).filter((v) => v !== null && v !== undefined);
    if (!logY && lows.length && Math.min(...lows) === Math.max(...highs)) {
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
    if (this.xMode === "step") this.stepRange = [Math.floor(low), Math.ceil(high)];
    else if (this.xMode === "time") this.stepRange = this.stepsWithin(() => [toMillis(low) / 1000, toMillis(high) / 1000]);
    else {
      const unit = this.relativeUnit().seconds;
      this.stepRange = this.stepsWithin((i) => [this.startOf(i) + low * unit, this.startOf(i) + high * unit]);
    }
    this.load();
  }

  // Wall-time zoom: the server filters by step, so turn the visible time window back into a step range.
  stepsWithin(window) {
    let lo = Infinity, hi = -Infinity;
    for (const [i, anchors] of this.stepTimes.entries()) {
      const [t0, t1] = window(i);
      const a = interpolate(anchors.timestamps, anchors.steps, t0), b = interpolate(anchors.timestamps, anchors.steps, t1);
      if (a !== null) lo = Math.min(lo, Math.floor(a));
      if (b !== null) hi = Math.max(hi, Math.ceil(b));
    }
    return lo <= hi ? [lo, hi] : this.stepRange;
  }

  // After a control changed: a new x axis needs other data (step times), smoothing and log-y only a redraw.
  update(what) {
    if (what === "xMode") return this.setXMode(this.controls.xMode);
    if (this.loaded.length) this.draw();
    return Promise.resolve();
  }

  setXMode(mode) {
    this.controls.xMode = mode;
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

function anchorsOf(m) {
  const steps = [], timestamps = [];
  (m.steps || []).forEach((step, i) => {
    const t = m.times ? m.times[i] : null;
    if (step !== null && t !== null && (!steps.length || step > steps[steps.length - 1])) { steps.push(step); timestamps.push(t); }
  });
  return { steps, timestamps };
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
