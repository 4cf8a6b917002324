// The experiment page's Media section (docs/media.md): per key, a step slider and a strip of evenly spaced steps;
// images as thumbnails (click for full size) with captions, audio and video players, tables paged, and histograms as
// a distribution-over-steps heatmap whose step range narrows on a drag (no step is sampled away: the server averages
// the histograms of each column). `renderMediaCompare` shows one key of several runs with one shared slider.

import { api } from "./api.js";
import { el } from "./dom.js";
import { evenSteps, heatmapPixels, nearestStep, tablePage } from "./lib/media.js";

const STRIP = 8;
const TABLE_ROWS = 20;
const expPath = (id) => `/experiments/${encodeURIComponent(id)}`;
const keyPath = (key) => key.split("/").map(encodeURIComponent).join("/");

// Media bytes through fetch (so a token goes along), shown from a blob URL.
async function blobUrl(url) {
  const answer = await api.fetch(url);
  if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
  return URL.createObjectURL(await answer.blob());
}

function showFull(url, caption) {
  const overlay = el("div", { class: "media-overlay", onclick: () => overlay.remove() },
    el("img", { class: "media-full" }), caption ? el("div", { class: "media-caption" }, caption) : null);
  document.body.append(overlay);
  blobUrl(url).then((src) => { overlay.querySelector("img").src = src; }).catch(console.error);
}

async function itemsAt(expId, key, step) {
  const page = await api.rest(`${expPath(expId)}/media/${keyPath(key)}?step_min=${step}&step_max=${step}&limit=100`);
  return page.items;
}

function renderTable(container, table) {
  let page = 0;
  const draw = () => {
    const { rows, pages } = tablePage(table.rows, page, TABLE_ROWS);
    const cell = (value) => {
      if (value && value._type === "image") {
        const img = el("img", { class: "media-cell" });
        img.src = `data:image/${value.format};base64,${value.data}`;
        return el("td", {}, img);
      }
      return el("td", {}, value === null ? "" : String(value));
    };
    container.replaceChildren(el("table", { class: "media-table" },
      el("tr", {}, ...table.columns.map((c) => el("th", {}, c))), ...rows.map((r) => el("tr", {}, ...r.map(cell)))),
    pages > 1 ? el("div", { class: "media-pager" },
      el("button", { onclick: () => { page -= 1; draw(); } }, "‹"), ` page ${page + 1} of ${pages} `,
      el("button", { onclick: () => { page += 1; draw(); } }, "›")) : null);
  };
  draw();
}

async function renderItem(item) {
  const caption = item.caption ? el("div", { class: "media-caption" }, item.caption) : null;
  if (item.kind === "image" || (item.kind === "video" && item.format === "apng")) {
    const img = el("img", { class: "media-thumb", title: "click for full size", onclick: () => showFull(item.url, item.caption) });
    blobUrl(item.thumbnail_url).then((src) => { img.src = src; }).catch(console.error);
    return el("figure", { class: "media-item" }, img, caption);
  }
  if (item.kind === "video" || item.kind === "audio") {
    const player = el(item.kind, { controls: "", class: `media-${item.kind}` });
    blobUrl(item.url).then((src) => { player.src = src; }).catch(console.error);
    return el("figure", { class: "media-item" }, player, caption);
  }
  if (item.kind === "table") {
    const box = el("div", { class: "media-item" }, "Loading…");
    api.fetch(item.url).then((a) => a.json()).then((table) => renderTable(box, table)).catch(console.error);
    return box;
  }
  return el("span", { class: "muted" }, item.kind);
}

// One key of one run: a slider over its steps, the strip, and the items at the chosen step.
export async function stepViewer(expId, key, onStep = null) {
  const { steps } = await api.rest(`${expPath(expId)}/media-steps/${keyPath(key)}`);
  const view = el("div", { class: "media-items" });
  const label = el("span", { class: "media-step" });
  const slider = el("input", { type: "range", min: "0", max: String(Math.max(0, steps.length - 1)), value: String(Math.max(0, steps.length - 1)), class: "media-slider" });
  let shown = null;
  const show = async (step) => {
    if (step === null || step === shown) return;
    shown = step;
    label.textContent = `step ${step}`;
    slider.value = String(steps.indexOf(step));
    const items = await itemsAt(expId, key, step);
    if (shown === step) view.replaceChildren(...await Promise.all(items.map(renderItem)));
  };
  slider.addEventListener("input", () => {
    const step = steps[Number(slider.value)];
    show(step);
    if (onStep) onStep(step);
  });
  const strip = el("div", { class: "media-strip" }, ...evenSteps(steps, STRIP).map((step) =>
    el("button", { class: "media-strip-step", onclick: () => { show(step); if (onStep) onStep(step); } }, String(step))));
  await show(steps.length ? steps[steps.length - 1] : null);
  return { element: el("div", { class: "media-viewer" }, el("div", { class: "media-controls" }, slider, label), strip, view), steps, show: (step) => show(nearestStep(steps, step)) };
}

// Histograms of one key as a heatmap: x steps, y values; drag across it to narrow the step range, double-click to
// go back to the whole run.
export async function histogramHeatmap(expId, key, width = 800, height = 160) {
  const canvas = el("canvas", { class: "media-heatmap", width: String(width), height: String(height) });
  const axis = el("div", { class: "media-axis muted" });
  let range = [null, null];
  const draw = async () => {
    const query = new URLSearchParams({ columns: String(width), bins: "64" });
    if (range[0] !== null) query.set("step_min", String(range[0]));
    if (range[1] !== null) query.set("step_max", String(range[1]));
    const heat = await api.rest(`${expPath(expId)}/histogram-heatmap/${keyPath(key)}?${query}`);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    if (!heat.values.length) return;
    const image = new ImageData(heatmapPixels(heat.values, heat.bins), heat.values.length, heat.bins);
    const bitmap = await createImageBitmap(image);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0, width, height);
    canvas.dataset.columns = String(heat.values.length);
    canvas.dataset.steps = String(heat.total);
    const first = heat.columns[0], last = heat.columns[heat.columns.length - 1];
    axis.textContent = `steps ${first.step_min}–${last.step_max} (${heat.total} histograms) · values ${heat.lo.toPrecision(3)} to ${heat.hi.toPrecision(3)}`;
    canvas.columnsInfo = heat.columns;
  };
  let dragFrom = null;
  canvas.addEventListener("mousedown", (event) => { dragFrom = event.offsetX; });
  canvas.addEventListener("mouseup", (event) => {
    const columns = canvas.columnsInfo || [];
    if (dragFrom === null || !columns.length || Math.abs(event.offsetX - dragFrom) < 4) { dragFrom = null; return; }
    const at = (x) => columns[Math.min(columns.length - 1, Math.max(0, Math.floor((x / width) * columns.length)))];
    const [a, b] = [Math.min(dragFrom, event.offsetX), Math.max(dragFrom, event.offsetX)];
    range = [at(a).step_min, at(b).step_max];
    dragFrom = null;
    draw().catch(console.error);
  });
  canvas.addEventListener("dblclick", () => { range = [null, null]; draw().catch(console.error); });
  await draw();
  return el("div", { class: "media-histogram" }, canvas, axis);
}

export class MediaSection {
  constructor(section, expId) {
    this.section = section;
    this.expId = expId;
  }

  async load() {
    const { keys } = await api.rest(`${expPath(this.expId)}/media`);
    if (!keys.length) { this.section.replaceChildren(); return; }
    const panels = await Promise.all(keys.map(async (k) => el("div", { class: "panel media-key", "data-key": k.key },
      el("h3", {}, k.key, el("span", { class: "muted" }, ` ${k.kind} · ${k.count}`)),
      k.kind === "histogram" ? await histogramHeatmap(this.expId, k.key) : (await stepViewer(this.expId, k.key)).element)));
    this.section.replaceChildren(el("h2", {}, "Media"), ...panels);
  }
}

// One key across runs, one row per run, one slider for all: moving it shows each run's nearest step.
export async function renderMediaCompare(container, expIds, key) {
  const viewers = await Promise.all(expIds.map((id) => stepViewer(id, key)));
  const all = [...new Set(viewers.flatMap((v) => v.steps))].sort((a, b) => a - b);
  const shared = el("input", { type: "range", min: "0", max: String(Math.max(0, all.length - 1)), value: String(Math.max(0, all.length - 1)), class: "media-compare-slider" });
  shared.addEventListener("input", () => viewers.forEach((v) => v.show(all[Number(shared.value)])));
  container.replaceChildren(el("h2", {}, `Media: ${key}`), shared,
    ...viewers.map((v, i) => el("div", { class: "panel media-compare-run", "data-exp": expIds[i] }, el("h3", {}, expIds[i]), v.element)));
  return viewers;
}
