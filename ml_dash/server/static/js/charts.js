// Metric charts: lazy plotly.js loading and MetricChart, which draws the series it is given (min/max-bucketed, on a
// step, wall-time or relative-time axis, smoothed or not) and asks its owner for new data on zoom (metric_series.js
// does the reading).

import { el } from "./dom.js";
import { plotlyText } from "./lib/format.js";
import { categoricalColor } from "./lib/scales.js";
import { constantRange, effectiveXMode, ema, interpolate, placeOf, relativeUnit, toMillis, yRangeOf } from "./lib/series.js";

// plotly.js (1.2 MB basic bundle, or the full 4.8 MB one): index.html only preloads it (download, no execution), and
// it runs when the first chart has sent its series request, so the browser evaluates it while the server reads.
// Only drawing waits for it; the navigator, tables, headers and logs never do.
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

const EMPTY = { count: 0, steps: [], values: [] };

const supersededTrace = (s, m, colour, x) => ({
  type: "scatter", mode: "markers+lines", name: plotlyText(s.label || `${s.metric} (superseded)`), x, y: m.values,
  connectgaps: false, opacity: 0.3, marker: { color: colour, size: 3 }, line: { width: 1, dash: "dot", color: colour },
  meta: "superseded", hovertemplate: "%{y} (superseded)<extra>%{fullData.name}</extra>",
});

// A chart of one or more metric series: each series is {experimentId, metric, label}. Its owner reads about one
// min/max bucket per horizontal pixel (pixelWidth()) for the step range in view (stepRange: null for the whole
// series) and hands the answers to setData(); a zoom, its reset or a new x axis calls onNeedData() for another read.
export class MetricChart {
  // controls ({smoothing, logY, xMode}, chart_controls.js) may be shared by all charts of a view.
  constructor(container, series, { controls }) {
    this.container = container;
    this.series = series;
    this.controls = controls;
    this.stepRange = null;  // null: whole series; [min, max]: zoomed in
    this.xRange = null;
    this.loaded = [];  // last answers, one per series: {count, steps, values, min, max}
    this.stepTimes = [];  // per series: {steps, timestamps} anchors for the wall-time axes
    this.renders = 0;
    this.plotted = false;
    this.destroyed = false;
    this.onNeedData = () => Promise.resolve();
    this.onDrawn = null;
    this.yRange = { mode: "robust", min: null, max: null };  // chart_controls.js yRangeControl
  }

  setYRange(yRange) {
    this.yRange = yRange;
    if (this.loaded.length && !this.destroyed) this.draw();
  }

  // "auto" (the default) draws a series logged without steps against the relative time; stepless is known once
  // the first answer came.
  get xMode() { return effectiveXMode(this.controls.xMode, this.stepless); }

  get stepless() {
    return this.loaded.length > 0 && this.loaded.every((m) => !m.values.length || m.steps.every((s) => s === null));
  }

  pixelWidth() {
    return Math.max(100, Math.round(this.container.clientWidth || 600));
  }

  // answers: one per series (null: none); stepTimes: new anchors per series, or null to keep the ones held.
  setData(answers, stepTimes = null) {
    if (this.destroyed) return;
    const mode = this.xMode;
    this.loaded = answers.map((m) => m || EMPTY);
    if (stepTimes) this.stepTimes = stepTimes;
    // The first answer showed a series without steps: on "auto" it goes on a time axis, which needs the anchors.
    if (this.xMode !== mode && this.xMode !== "step" && !this.stepTimes.length) { this.onNeedData(); return; }
    this.draw();
  }

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

  xValues(i, answerSteps, count) {
    const steps = placeOf(answerSteps, count);
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
      // A series' superseded points (experiment_runs.js toggle): its colour, faint, and only on the step axis (their
      // wall times are not read: the step-time anchors are the history's).
      if (s.superseded) {
        if (this.xMode === "step") traces.push(supersededTrace(s, m, categoricalColor(s.colourOf ?? i), this.xValues(i, m.steps, m.count)));
        return;
      }
      const colour = categoricalColor(i);
      const base = { type: "scatter", mode: m.values.length < 2 ? "markers" : "lines", name: plotlyText(s.label || s.metric),
                     x: this.xValues(i, m.steps, m.count), connectgaps: false, marker: { color: colour } };
      const hover = { hovertemplate: "%{y}<extra>%{fullData.name}</extra>" };
      if (smoothing > 0) {
        // The raw line stays, faint, behind the smoothed one (as TensorBoard and W&B draw it): a spike is never hidden.
        traces.push({ ...base, y: m.values, showlegend: false, hoverinfo: "skip", opacity: 0.25, line: { width: 1, color: colour }, meta: "raw" });
        traces.push({ ...base, ...hover, y: ema(m.values, smoothing), line: { width: 1.5, color: colour }, meta: "smoothed" });
      } else {
        traces.push({ ...base, ...hover, y: m.values, line: { width: 1.5, color: colour } });
      }
    });
    const xTitle = this.xMode === "step" ? (this.stepless ? "point (logged without a step)" : "step")
      : this.xMode === "time" ? "" : this.relativeUnit().label;
    const layout = {
      margin: { l: 50, r: 10, t: 8, b: 32 }, showlegend: this.series.filter((s) => !s.superseded).length > 1,
      legend: { orientation: "h", y: -0.18 },
      xaxis: { title: { text: plotlyText(xTitle) }, type: this.xMode === "time" ? "date" : "linear" },
      // SI ticks (1.5k, 2T) and automargin: a label of 1e12 would otherwise be cut to "00000000" at the left edge.
      yaxis: { autorange: true, type: logY ? "log" : "linear", exponentformat: "SI", automargin: true }, uirevision: `${this.xMode}:${logY}:${Object.values(this.yRange).join(":")}`, hovermode: "x",
    };
    const constant = logY ? null : constantRange(this.loaded.map((m) => m.min), this.loaded.map((m) => m.max));
    const range = constant || this.yRangeOfValues(logY);
    if (range) layout.yaxis = { ...layout.yaxis, autorange: false, range };
    this.container.dataset.yRange = range ? range.join(",") : "";
    this.container.dataset.yMode = this.yRange.mode;
    if (this.stepRange && this.xRange) layout.xaxis.range = this.xRange;
    else layout.xaxis.autorange = true;
    const config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
    Plotly.react(this.container, traces, layout, config);
    if (!this.plotted) {
      this.plotted = true;
      this.container.on("plotly_relayout", (event) => this.onRelayout(event));
    }
    this.renders++;
    this.container.dataset.count = this.loaded.map((m) => m.count).join(",");
    this.container.dataset.drawn = this.loaded.map((m) => m.values.length).join(",");
    this.container.dataset.renders = String(this.renders);
    this.container.dataset.xMode = this.xMode;
    this.container.dataset.state = "ready";
    if (this.onDrawn) this.onDrawn(this);
  }

  // The y range (robust by default: a diverged series' outlying values stay off the chart), in the axis' units: plotly
  // takes a log axis' range as powers of ten.
  yRangeOfValues(logY) {
    const ty = (v) => (v === null || v === undefined || !isFinite(v) ? null : logY ? (v > 0 ? Math.log10(v) : null) : v);
    const { mode, min, max } = this.yRange;
    return yRangeOf(this.loaded.map((m) => m.values.map(ty)), { mode, min: min === null ? null : ty(min), max: max === null ? null : ty(max) });
  }

  onRelayout(event) {
    if (event["xaxis.autorange"] || event.autosize) {
      if (this.stepRange) { this.stepRange = null; this.xRange = null; this.onNeedData(); }
      return;
    }
    const low = event["xaxis.range[0]"] ?? (event["xaxis.range"] || [])[0];
    const high = event["xaxis.range[1]"] ?? (event["xaxis.range"] || [])[1];
    if (low === undefined || high === undefined) return;
    this.xRange = [low, high];
    if (this.stepless) return;  // no step to ask the server for: plotly zooms into the points it holds
    if (this.xMode === "step") this.stepRange = [Math.floor(low), Math.ceil(high)];
    else if (this.xMode === "time") this.stepRange = this.stepsWithin(() => [toMillis(low) / 1000, toMillis(high) / 1000]);
    else {
      const unit = this.relativeUnit().seconds;
      this.stepRange = this.stepsWithin((i) => [this.startOf(i) + low * unit, this.startOf(i) + high * unit]);
    }
    this.onNeedData();
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
    if (what === "xMode") {
      this.stepRange = null;
      this.xRange = null;
      return this.onNeedData();
    }
    if (this.loaded.length) this.draw();
    return Promise.resolve();
  }

  destroy() {
    this.destroyed = true;
    if (this.plotted) Plotly.purge(this.container);
    delete this.container.dataset.state;
  }
}
