// OverlayChart: one metric of many runs (up to ~1,000) drawn on a canvas from per-run min/max envelopes; hover names a run.

import { el } from "./dom.js";
import { formatValue, siTick, timeLabel } from "./lib/format.js";
import { effectiveXMode, ema, extent, groupEnvelope, nearestIndex, niceTicks, placeOf, relativeUnit, yRangeOf } from "./lib/series.js";

// SVG (plotly) slows down past a few hundred traces of ~1,000 points; a canvas draws 1,000 envelopes in one pass.
const MARGIN = { l: 56, r: 12, t: 10, b: 30 };
const HOVER_PX = 24;  // a line further than this from the pointer is not picked
const LEGEND_ITEMS = 300;  // entries written into a chart's legend; a workspace of 1,000 runs says how many more

export class OverlayChart {
  constructor(container, { onOpen = null, height = 240 } = {}) {
    this.container = container;
    this.onOpen = onOpen;
    this.height = height;
    this.base = el("canvas", { class: "overlay-base" });
    this.top = el("canvas", { class: "overlay-top" });
    this.tip = el("div", { class: "overlay-tip", hidden: true });
    container.classList.add("overlay-chart");
    container.replaceChildren(this.base, this.top, this.tip);
    // One entry per drawn line (run or group) in its colour, under the plot: compact, scrolling when there are many.
    this.legend = el("div", { class: "overlay-legend legend" });
    if (container.parentNode) container.after(this.legend);
    this.yRange = { mode: "robust", min: null, max: null };  // y-range control (chart_controls.js yRangeControl)
    this.lines = [];
    this.hovered = null;
    this.renders = 0;
    this.top.addEventListener("mousemove", (event) => this.hover(event.offsetX, event.offsetY));
    this.top.addEventListener("mouseleave", () => this.hover(null, null));
    this.top.addEventListener("click", () => {
      if (this.hovered && this.hovered.id && this.onOpen) this.onOpen(this.hovered.id);
    });
    // Redraw at the new width when the window (hence the grid) resizes; the canvases are absolutely placed, so
    // drawing never changes the container's own width.
    this.width = 0;
    new ResizeObserver(() => {
      if (this.runs && this.container.clientWidth && this.container.clientWidth !== this.width) this.draw();
    }).observe(container);
  }

  // runs: [{id, label, color, steps, values, times, start}]; groups: null, or [{label, color, members: [run index]}].
  setData(runs, controls, groups = null) {
    this.runs = runs;
    this.controls = controls;
    this.groups = groups;
    this.draw();
  }

  // Every run was logged without steps (W&B's habit): "auto" draws it on the relative time, "step" by log order.
  get stepless() {
    return this.runs.length > 0 && this.runs.every((r) => !r.steps.length || r.steps.every((s) => s === null));
  }

  xsOf(run, unit) {
    const mode = effectiveXMode(this.controls.xMode, this.stepless);
    if (mode === "step") return placeOf(run.steps, run.count ?? run.steps.length);
    if (!run.times) return run.steps.map(() => null);
    if (mode === "time") return run.times;
    const start = run.start ?? run.times.find((t) => t !== null);
    return run.times.map((t) => (t === null ? null : (t - start) / unit.seconds));  // unit: relativeUnit()
  }

  draw() {
    const { smoothing, logY } = this.controls, xMode = effectiveXMode(this.controls.xMode, this.stepless);
    const width = Math.max(200, this.container.clientWidth || 500), height = this.height;
    this.width = this.container.clientWidth;
    const ratio = window.devicePixelRatio || 1;
    for (const canvas of [this.base, this.top]) {
      canvas.width = width * ratio; canvas.height = height * ratio;
      canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    }
    const spans = this.runs.map((r) => (r.times && r.times.length ? r.times[r.times.length - 1] - r.times[0] : 0));
    const unit = relativeUnit(Math.max(0, ...spans));
    const ty = (v) => (v === null || v === undefined || !isFinite(v) ? null : logY ? (v > 0 ? Math.log10(v) : null) : v);
    let rawMax = -Infinity;
    const series = this.runs.map((run) => {
      const xs = this.xsOf(run, unit);
      for (const v of run.values) if (v !== null && v > rawMax) rawMax = v;
      return { run, xs, raw: run.values.map(ty), smooth: smoothing > 0 ? ema(run.values, smoothing).map(ty) : null };
    });
    const { x: [x0, x1], y: full } = extent(series.map((s) => ({ xs: s.xs, ys: s.raw })));
    // A diverged run would flatten the others: by default the y range leaves its outlying values off the chart.
    const { mode, min, max } = this.yRange;
    const [y0, y1] = yRangeOf(series.map((s) => s.raw.filter((_, i) => s.xs[i] !== null)),
      { mode, min: min === null ? null : ty(min), max: max === null ? null : ty(max) }) || full;
    const plot = { l: MARGIN.l, t: MARGIN.t, w: width - MARGIN.l - MARGIN.r, h: height - MARGIN.t - MARGIN.b };
    const px = (x) => plot.l + ((x - x0) / (x1 - x0)) * plot.w;
    const py = (y) => plot.t + (1 - (y - y0) / (y1 - y0)) * plot.h;
    this.geometry = { plot, px, py, ratio };

    const ctx = this.base.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const stepTitle = this.stepless ? "point (logged without a step)" : "step";
    drawAxes(ctx, plot, [x0, x1], [y0, y1], px, py, xMode, logY, xMode === "relative" ? unit.label : xMode === "step" ? stepTitle : "");
    ctx.save();
    ctx.beginPath(); ctx.rect(plot.l, plot.t, plot.w, plot.h); ctx.clip();
    const many = series.length > 50;
    if (this.groups) {
      // groupEnvelope interpolates each run between its points, so a column needs no point of its own.
      const bins = Math.max(10, Math.round(plot.w / 2));
      this.lines = this.groups.map((g) => groupLine(g, series, x0, x1, bins, smoothing, ty));
      for (const line of this.lines) {
        ctx.fillStyle = line.color; ctx.globalAlpha = 0.18;
        fillBand(ctx, line.xs, line.lo, line.hi, px, py);
        if (line.smooth) strokeLine(ctx, line.xs, line.mean, px, py, line.color, 1, 0.3);
        strokeLine(ctx, line.xs, line.smooth || line.mean, px, py, line.color, 2, 1);
      }
    } else {
      this.lines = series.map((s) => ({ id: s.run.id, label: s.run.label, color: s.run.color, xs: s.xs, ys: s.smooth || s.raw, raw: s.run.values }));
      for (const s of series) {
        if (s.smooth) strokeLine(ctx, s.xs, s.raw, px, py, s.run.color, 1, many ? 0.08 : 0.25);
        strokeLine(ctx, s.xs, s.smooth || s.raw, px, py, s.run.color, many ? 1 : 1.5, many ? 0.55 : 0.9);
      }
    }
    ctx.restore();
    this.ty = ty;
    this.renders++;
    Object.assign(this.container.dataset, {
      state: "ready", runs: String(this.runs.length), renders: String(this.renders),
      points: String(series.reduce((n, s) => n + s.xs.length, 0)),
      placed: String(series.reduce((n, s) => n + s.xs.filter((x, i) => x !== null && isFinite(x) && s.raw[i] !== null).length, 0)), max: rawMax === -Infinity ? "" : String(rawMax),
      lines: String(this.lines.length), xMode, yRange: `${y0},${y1}`, yMode: mode,
    });
    this.drawLegend();
    this.hover(null, null);
  }

  drawLegend() {
    const items = this.lines.slice(0, LEGEND_ITEMS).map((line) => el("span", { class: "legend-item", "data-id": line.id || "", title: line.label },
      el("span", { class: "swatch", style: `background:${line.color}` }), line.label));
    if (this.lines.length > LEGEND_ITEMS) items.push(el("span", { class: "muted" }, `and ${this.lines.length - LEGEND_ITEMS} more`));
    this.legend.replaceChildren(...items);
  }

  setYRange(yRange) {
    this.yRange = yRange;
    if (this.runs) this.draw();
  }

  // The line nearest the pointer (vertically, at the pointer's x) is drawn on top, the others fade behind a veil.
  hover(mx, my) {
    const { plot, px, py, ratio } = this.geometry || {};
    const ctx = this.top.getContext("2d");
    ctx.setTransform(ratio || 1, 0, 0, ratio || 1, 0, 0);
    ctx.clearRect(0, 0, this.top.width, this.top.height);
    let best = null, bestDistance = HOVER_PX, bestValue = null;
    if (mx !== null && plot && mx >= plot.l && mx <= plot.l + plot.w) {
      for (const line of this.lines) {
        const i = nearestIndex(line.xs, mx, px);
        for (const j of [i - 1, i, i + 1]) {
          if (j < 0 || j >= line.xs.length || line.xs[j] === null || line.ys[j] === null) continue;
          const d = Math.hypot((px(line.xs[j]) - mx) / 4, py(line.ys[j]) - my);
          if (d < bestDistance) { bestDistance = d; best = line; bestValue = line.raw ? line.raw[j] : line.ys[j]; }
        }
      }
    }
    this.hovered = best;
    this.container.dataset.hovered = best ? best.id || best.label : "";
    this.top.style.cursor = best && best.id ? "pointer" : "default";
    if (!best) { this.tip.hidden = true; return; }
    ctx.fillStyle = "rgba(255, 255, 255, 0.65)";
    ctx.fillRect(plot.l, plot.t, plot.w, plot.h);
    ctx.save();
    ctx.beginPath(); ctx.rect(plot.l, plot.t, plot.w, plot.h); ctx.clip();
    strokeLine(ctx, best.xs, best.ys, px, py, best.color, 2.5, 1);
    ctx.restore();
    this.tip.hidden = false;
    this.tip.textContent = `${best.label}: ${formatValue(bestValue)}`;
    this.tip.style.left = `${Math.max(0, Math.min(mx + 12, this.container.clientWidth - this.tip.offsetWidth - 4))}px`;
    this.tip.style.top = `${Math.max(0, my - 28)}px`;
  }
}

function strokeLine(ctx, xs, ys, px, py, color, width, alpha) {
  ctx.strokeStyle = color; ctx.lineWidth = width; ctx.globalAlpha = alpha;
  ctx.beginPath();
  let open = false, lone = null;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i], y = ys[i];
    if (x === null || y === null || y === undefined) { open = false; continue; }
    if (open) ctx.lineTo(px(x), py(y)); else { ctx.moveTo(px(x), py(y)); lone = [px(x), py(y)]; open = true; }
  }
  ctx.stroke();
  if (xs.length === 1 && lone) { ctx.fillStyle = color; ctx.fillRect(lone[0] - 2, lone[1] - 2, 4, 4); }
  ctx.globalAlpha = 1;
}

function fillBand(ctx, xs, lo, hi, px, py) {
  let start = -1;
  const flush = (end) => {
    if (start < 0) return;
    ctx.beginPath();
    for (let i = start; i < end; i++) (i === start ? ctx.moveTo : ctx.lineTo).call(ctx, px(xs[i]), py(hi[i]));
    for (let i = end - 1; i >= start; i--) ctx.lineTo(px(xs[i]), py(lo[i]));
    ctx.closePath(); ctx.fill();
    start = -1;
  };
  for (let i = 0; i < xs.length; i++) {
    if (lo[i] === null) flush(i); else if (start < 0) start = i;
  }
  flush(xs.length);
  ctx.globalAlpha = 1;
}

// A group drawn as the mean of its runs with the min-max band across them (lib/series.js groupEnvelope), in the
// y axis' units (ty: log10 on a log axis).
function groupLine(group, series, x0, x1, bins, smoothing, ty) {
  const { xs, mean, lo, hi } = groupEnvelope(group.members.map((i) => ({ xs: series[i].xs, values: series[i].run.values })), x0, x1, bins);
  return {
    id: null, label: `${group.label} (${group.members.length} run${group.members.length === 1 ? "" : "s"})`, color: group.color, xs,
    mean: mean.map(ty), lo: lo.map(ty), hi: hi.map(ty), smooth: smoothing > 0 ? ema(mean, smoothing).map(ty) : null,
    get ys() { return this.smooth || this.mean; }, raw: mean,
  };
}

function drawAxes(ctx, plot, [x0, x1], [y0, y1], px, py, xMode, logY, title) {
  ctx.strokeStyle = "#e3e3e3"; ctx.fillStyle = "#555"; ctx.lineWidth = 1;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const t of niceTicks(y0, y1, 5)) {
    ctx.beginPath(); ctx.moveTo(plot.l, py(t)); ctx.lineTo(plot.l + plot.w, py(t)); ctx.stroke();
    ctx.fillText(siTick(logY ? 10 ** t : t), plot.l - 4, py(t));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const t of niceTicks(x0, x1, Math.max(2, Math.round(plot.w / 110)))) {
    ctx.beginPath(); ctx.moveTo(px(t), plot.t); ctx.lineTo(px(t), plot.t + plot.h); ctx.stroke();
    ctx.fillText(xMode === "time" ? timeLabel(t, x1 - x0) : formatValue(Number(t.toPrecision(6))), px(t), plot.t + plot.h + 4);
  }
  ctx.strokeStyle = "#999";
  ctx.strokeRect(plot.l, plot.t, plot.w, plot.h);
  if (title) { ctx.textAlign = "right"; ctx.fillText(title, plot.l + plot.w, plot.t + plot.h + 16); }
}
