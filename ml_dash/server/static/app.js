// ml-dash dashboard: a dependency-free single-page app over the server's /graphql and /api/v1 reads.
// Routes (hash based so a test or a bookmark can open any view directly):
//   #/                              overview of namespaces and workspaces
//   #/ws/<ns>/<ws>?dir=<d>&filter=  runs table of a workspace (optionally one directory subtree)
//   #/exp/<id>                      experiment page (readme, parameters, charts, logs, files; live while RUNNING)
//   #/compare?ids=a,b&metric=<m>    one metric of several experiments overlaid in one chart
"use strict";

const LIVE_POLL_MS = 1500;
const LOG_LIMIT = 1000;

// ---------------------------------------------------------------- small helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function formatNumber(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "boolean") return String(value);
  if (typeof value !== "number") return String(value);  // "NaN" / "Infinity" arrive as text
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(5)));
}

function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return formatNumber(value);
}

function formatTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function durationOf(exp) {
  if (!exp.startedAt) return null;
  const end = exp.status === "RUNNING" ? Date.now() / 1000 : (exp.completedAt || exp.startedAt);
  return end - exp.startedAt;
}

// Nested parameters become dotted keys ("model.layers") so each one can be a column or a filter term.
function flatten(object, prefix = "", out = {}) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    if (prefix) out[prefix] = object;
    return out;
  }
  for (const [key, value] of Object.entries(object)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) flatten(value, path, out);
    else out[path] = value;
  }
  return out;
}

function statusBadge(status) {
  const s = status || "none";
  return el("span", { class: `status status-${s}`, "data-status": s },
    s === "RUNNING" ? el("span", { class: "pulse" }) : null, status || "—");
}

const isMissing = (v) => v === null || v === undefined || v === "";

// Sort order for table cells; empty cells always sink to the bottom, whichever the direction.
function compareCells(a, b, descending) {
  if (isMissing(a) || isMissing(b)) return isMissing(a) - isMissing(b);
  const order = typeof a === "number" && typeof b === "number" ? a - b
    : String(a).localeCompare(String(b), undefined, { numeric: true });
  return descending ? -order : order;
}

// ---------------------------------------------------------------- server access

const api = {
  token: localStorage.getItem("mlDashToken") || "",

  headers(extra = {}) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
  },

  async fetch(url, options = {}) {
    const answer = await fetch(url, { ...options, headers: this.headers(options.headers) });
    if (answer.status === 401) {
      // The server was started with tokens: ask once, keep it for this browser, retry.
      const token = prompt("This ml-dash server needs an API token:");
      if (token) {
        this.token = token.trim();
        localStorage.setItem("mlDashToken", this.token);
        return this.fetch(url, options);
      }
    }
    return answer;
  },

  async graphql(query, variables = {}) {
    const answer = await this.fetch("/graphql", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query, variables }),
    });
    const body = await answer.json();
    if (body.errors && body.errors.length) throw new Error(body.errors.map((e) => e.message).join("; "));
    if (!answer.ok) throw new Error(body.error || `HTTP ${answer.status}`);
    return body.data;
  },

  async rest(path) {
    const answer = await this.fetch(`/api/v1${path}`);
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || `HTTP ${answer.status}`);
    return body;
  },

  fileUrl(experimentId, path) {
    return `/api/v1/experiments/${encodeURIComponent(experimentId)}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
  },
};

// ---------------------------------------------------------------- charts

// plotly.js (1.2 MB basic bundle, or the full 4.8 MB one): index.html only preloads it (download, no execution), and
// it runs when the first chart has
// sent its series request, so the browser evaluates it while the server reads. Only drawing waits for it; the
// navigator, tables, headers and logs never do.
const PLOTLY_URL = "/static/vendor/plotly.min.js";
let plotlyPromise = null;

function loadPlotly() {
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
class MetricChart {
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
      return { type: "scatter", mode: m.values.length < 2 ? "markers" : "lines", name: s.label || s.metric, x, y: m.values,
               connectgaps: false, line: { width: 1.5 }, hovertemplate: "%{y}<extra>%{fullData.name}</extra>" };
    });
    const layout = {
      margin: { l: 50, r: 10, t: 8, b: 32 }, showlegend: this.series.length > 1,
      legend: { orientation: "h", y: -0.18 },
      xaxis: { title: { text: this.xMode === "time" ? "" : "step" }, type: this.xMode === "time" ? "date" : "linear" },
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

// ---------------------------------------------------------------- navigator (left side)

const navigator_ = {
  experiments: [],
  loaded: false,
  openNodes: new Set(JSON.parse(sessionStorage.getItem("mlDashOpen") || "[]")),
  query: "",

  async refresh() {
    const data = await api.graphql(`{ experiments(limit: 10000) { id namespace workspace directory prefix readme status } }`);
    this.experiments = data.experiments;
    this.loaded = true;
    this.render();
  },

  toggle(key, open) {
    if (open ?? !this.openNodes.has(key)) this.openNodes.add(key); else this.openNodes.delete(key);
    sessionStorage.setItem("mlDashOpen", JSON.stringify([...this.openNodes]));
  },

  // namespace → workspace → directory segments → experiments
  buildTree(experiments) {
    const root = new Map();
    const child = (map, name) => {
      if (!map.has(name)) map.set(name, { children: new Map(), experiments: [] });
      return map.get(name);
    };
    for (const exp of experiments) {
      let node = child(child(root, exp.namespace).children, exp.workspace);
      for (const part of (exp.directory || "").split("/").filter(Boolean)) node = child(node.children, part);
      node.experiments.push(exp);
    }
    return root;
  },

  render() {
    if (!this.loaded) return;  // refresh() renders once the list arrives
    const query = this.query.toLowerCase();
    const matches = query
      ? this.experiments.filter((e) => e.prefix.toLowerCase().includes(query) || (e.readme || "").toLowerCase().includes(query))
      : this.experiments;
    const container = document.getElementById("nav-tree");
    container.replaceChildren();
    if (!matches.length) {
      container.append(el("p", { class: "muted" }, query ? "No experiment matches." : "No experiments yet."));
      return;
    }
    const current = location.hash;
    const list = el("ul");
    for (const [namespace, nsNode] of [...this.buildTree(matches)].sort()) {
      const nsKey = `ns:${namespace}`;
      const wsList = el("ul");
      for (const [workspace, wsNode] of [...nsNode.children].sort()) {
        const href = `#/ws/${encodeURIComponent(namespace)}/${encodeURIComponent(workspace)}`;
        wsList.append(this.renderFolder(`ws:${namespace}/${workspace}`, workspace, "workspace", wsNode, href, namespace, workspace, "", query, current));
      }
      list.append(this.renderNode(nsKey, el("span", {}, namespace, el("span", { class: "kind" }, "namespace")), wsList, query));
    }
    container.append(list);
  },

  renderFolder(key, name, kind, node, href, namespace, workspace, directory, query, current) {
    const children = el("ul");
    for (const [part, sub] of [...node.children].sort()) {
      const dir = directory ? `${directory}/${part}` : part;
      const dirHref = `#/ws/${encodeURIComponent(namespace)}/${encodeURIComponent(workspace)}?dir=${encodeURIComponent(dir)}`;
      children.append(this.renderFolder(`${key}/${part}`, part, "dir", sub, dirHref, namespace, workspace, dir, query, current));
    }
    for (const exp of [...node.experiments].sort((a, b) => a.prefix.localeCompare(b.prefix))) {
      const expHref = `#/exp/${exp.id}`;
      children.append(el("li", {}, el("a", { href: expHref, class: `exp ${current === expHref ? "active" : ""}`, title: exp.prefix, "data-experiment": exp.id },
        exp.status === "RUNNING" ? el("span", { class: "pulse", title: "running" }) : null, " ", exp.prefix)));
    }
    const label = el("span", {}, el("a", { href, class: current === href ? "active" : "", onclick: () => this.toggle(key, true) }, name),
      el("span", { class: "kind" }, kind === "dir" ? "dir" : "workspace"));
    return this.renderNode(key, label, children, query);
  },

  renderNode(key, label, children, query) {
    const item = el("li", { class: query || this.openNodes.has(key) ? "open" : "" });
    const handle = el("span", { class: "node", onclick: (event) => {
      if (event.target.tagName === "A") return;
      this.toggle(key);
      item.classList.toggle("open");
    } }, label);
    item.append(handle, children);
    return item;
  },
};

// ---------------------------------------------------------------- views

let currentView = null;  // {destroy()} of the view on screen, so timers and charts stop when we navigate away
let navigatorReady = null;  // the navigator's first load; only the home view (built from its list) waits for it

function setBreadcrumbs(...parts) {
  const nav = document.getElementById("breadcrumbs");
  nav.replaceChildren();
  parts.forEach(([text, href], i) => {
    if (i) nav.append(el("span", { class: "sep" }, "/"));
    nav.append(href ? el("a", { href }, text) : el("span", {}, text));
  });
}

function setLive(on) {
  document.getElementById("live-indicator").hidden = !on;
}

function parseHash() {
  const [path, queryString] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(queryString || "") };
}

async function route() {
  if (currentView && currentView.destroy) currentView.destroy();
  currentView = null;
  setLive(false);
  const main = document.getElementById("main");
  main.replaceChildren();
  const { parts, query } = parseHash();
  try {
    if (parts[0] === "exp" && parts[1]) currentView = await experimentView(main, parts[1]);
    else if (parts[0] === "ws" && parts.length >= 3) currentView = await runsView(main, parts[1], parts[2], query.get("dir") || "", query.get("filter") || "");
    else if (parts[0] === "compare") currentView = await compareView(main, (query.get("ids") || "").split(",").filter(Boolean), query.get("metric"));
    else { await navigatorReady; currentView = homeView(main); }
  } catch (error) {
    main.append(el("p", { class: "error" }, `Could not load this view: ${error.message}`));
    console.error(error);
  }
  navigator_.render();
}

function homeView(main) {
  setBreadcrumbs();
  main.append(el("h1", {}, "Workspaces"));
  const groups = new Map();
  for (const e of navigator_.experiments) {
    const key = `${e.namespace}\u0000${e.workspace}`;
    const g = groups.get(key) || { namespace: e.namespace, workspace: e.workspace, total: 0, running: 0 };
    g.total++;
    if (e.status === "RUNNING") g.running++;
    groups.set(key, g);
  }
  if (!groups.size) main.append(el("p", { class: "muted" }, "No experiments yet. Point a client at this server with Experiment(..., remote=URL)."));
  const table = el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "namespace"), el("th", {}, "workspace"), el("th", {}, "experiments"), el("th", {}, "running"))));
  const body = el("tbody");
  for (const g of [...groups.values()].sort((a, b) => (a.namespace + a.workspace).localeCompare(b.namespace + b.workspace))) {
    body.append(el("tr", {}, el("td", {}, g.namespace),
      el("td", {}, el("a", { href: `#/ws/${encodeURIComponent(g.namespace)}/${encodeURIComponent(g.workspace)}` }, g.workspace)),
      el("td", { class: "num" }, g.total), el("td", { class: "num" }, g.running ? statusBadge("RUNNING") : "0")));
  }
  table.append(body);
  if (groups.size) main.append(el("div", { class: "table-wrap" }, table));
  return null;
}

// ---------------- runs table

// "lr = 0.001, model.layers > 50": terms joined by "," or "and"; the key is any column (parameter, metric, status,
// prefix, hostname). Numbers compare as numbers; "~" means "contains".
function parseFilter(text) {
  const terms = [];
  for (const raw of text.split(/,|\band\b|&&/i)) {
    const term = raw.trim();
    if (!term) continue;
    const match = term.match(/^(.+?)\s*(==|!=|>=|<=|=|>|<|~)\s*(.*)$/);
    if (!match) throw new Error(`cannot read "${term}": expected KEY OP VALUE with OP one of = != > >= < <= ~`);
    terms.push({ key: match[1].trim(), op: match[2], value: match[3].trim().replace(/^["']|["']$/g, "") });
  }
  return terms;
}

function matchesTerm(cell, { op, value }) {
  if (op === "~") return cell !== undefined && cell !== null && String(cell).toLowerCase().includes(value.toLowerCase());
  if (cell === undefined || cell === null) return op === "!=";
  const wanted = value === "" || isNaN(Number(value)) ? value : Number(value);
  let order;
  if (typeof wanted === "number" && (typeof cell === "number" || typeof cell === "boolean")) order = Number(cell) - wanted;
  else order = String(cell).localeCompare(String(wanted), undefined, { numeric: true });
  switch (op) {
    case "=": case "==": return order === 0;
    case "!=": return order !== 0;
    case ">": return order > 0;
    case ">=": return order >= 0;
    case "<": return order < 0;
    case "<=": return order <= 0;
  }
  return false;
}

async function runsView(main, namespace, workspace, directory, initialFilter) {
  const base = `#/ws/${encodeURIComponent(namespace)}/${encodeURIComponent(workspace)}`;
  const crumbs = [[namespace, null], [workspace, base]];
  let dirSoFar = "";
  for (const part of directory.split("/").filter(Boolean)) {
    dirSoFar = dirSoFar ? `${dirSoFar}/${part}` : part;
    crumbs.push([part, `${base}?dir=${encodeURIComponent(dirSoFar)}`]);
  }
  setBreadcrumbs(...crumbs);
  for (const key of [`ns:${namespace}`, `ws:${namespace}/${workspace}`]) navigator_.toggle(key, true);

  const state = { rows: [], sortKey: "started", sortDesc: true, selected: new Set(), filter: initialFilter, timer: null, destroyed: false };
  const title = el("h1", {}, directory ? `${workspace} / ${directory}` : workspace);
  const filterInput = el("input", { type: "text", id: "runs-filter", value: initialFilter, placeholder: "filter: lr = 0.001, model.layers > 50", spellcheck: "false" });
  const filterError = el("span", { class: "error", id: "runs-filter-error" });
  const compareButton = el("button", { class: "primary", id: "compare-button", disabled: true, onclick: () => {
    location.hash = `#/compare?ids=${[...state.selected].join(",")}`;
  } }, "Compare selected");
  const countLabel = el("span", { class: "muted", id: "runs-count" });
  const tableWrap = el("div", { class: "table-wrap" });
  main.append(title, el("div", { class: "toolbar" }, filterInput, compareButton, countLabel, filterError), tableWrap);

  const builtinColumns = [
    { key: "status", label: "status", get: (r) => r.status },
    { key: "prefix", label: "prefix", get: (r) => r.prefix },
    { key: "started", label: "started", get: (r) => r.startedAt },
    { key: "duration", label: "duration", get: (r) => durationOf(r) },
    { key: "hostname", label: "hostname", get: (r) => r.hostname },
  ];

  async function load() {
    const data = await api.graphql(`query Runs($ns: String!, $ws: String!) { experiments(namespace: $ns, workspace: $ws, limit: 10000) {
      id directory prefix readme status hostname startedAt completedAt params lastMetrics } }`, { ns: namespace, ws: workspace });
    state.rows = data.experiments
      .filter((e) => !directory || e.directory === directory || e.directory.startsWith(`${directory}/`))
      .map((e) => ({ ...e, flatParams: flatten(e.params || {}), lastMetrics: e.lastMetrics || {} }));
    render();
    const anyRunning = state.rows.some((r) => r.status === "RUNNING");
    setLive(anyRunning);
    clearTimeout(state.timer);
    if (anyRunning && !state.destroyed) state.timer = setTimeout(() => load().catch(console.error), LIVE_POLL_MS * 2);
  }

  function cellValue(row, column) {
    return column.get(row);
  }

  function render() {
    const paramKeys = [...new Set(state.rows.flatMap((r) => Object.keys(r.flatParams)))].sort();
    const metricKeys = [...new Set(state.rows.flatMap((r) => Object.keys(r.lastMetrics)))].sort();
    const columns = [...builtinColumns,
      ...paramKeys.map((k) => ({ key: `param:${k}`, label: k, kind: "param", get: (r) => r.flatParams[k] })),
      ...metricKeys.map((k) => ({ key: `metric:${k}`, label: k, kind: "metric", get: (r) => r.lastMetrics[k] }))];

    let terms = [];
    filterError.textContent = "";
    try { terms = parseFilter(state.filter); } catch (error) { filterError.textContent = error.message; }
    const columnFor = (key) => columns.find((c) => c.key === `param:${key}`) || columns.find((c) => c.key === key)
      || columns.find((c) => c.key === `metric:${key}`);
    const unknown = terms.filter((t) => !columnFor(t.key));
    if (unknown.length) filterError.textContent = `no column named ${unknown.map((t) => `"${t.key}"`).join(", ")}`;
    const visible = state.rows.filter((row) => terms.every((t) => {
      const column = columnFor(t.key);
      return column ? matchesTerm(cellValue(row, column), t) : false;
    }));
    const sortColumn = columns.find((c) => c.key === state.sortKey) || builtinColumns[2];
    visible.sort((a, b) => compareCells(cellValue(a, sortColumn), cellValue(b, sortColumn), state.sortDesc));
    countLabel.textContent = `${visible.length} of ${state.rows.length} experiments`;

    const allBox = el("input", { type: "checkbox", title: "select all shown", onclick: (event) => {
      event.stopPropagation();
      for (const row of visible) event.target.checked ? state.selected.add(row.id) : state.selected.delete(row.id);
      render();
    } });
    allBox.checked = visible.length > 0 && visible.every((r) => state.selected.has(r.id));
    const head = el("tr", {}, el("th", {}, allBox), columns.map((c) => el("th", {
      class: c.kind || "", "data-column": c.key, title: c.kind ? `${c.kind} ${c.label}` : c.label,
      onclick: () => {
        if (state.sortKey === c.key) state.sortDesc = !state.sortDesc; else { state.sortKey = c.key; state.sortDesc = false; }
        render();
      },
    }, c.label, state.sortKey === c.key ? el("span", { class: "arrow" }, state.sortDesc ? " ▼" : " ▲") : null)));

    const body = el("tbody");
    for (const row of visible) {
      const box = el("input", { type: "checkbox", class: "select-row", onclick: (event) => {
        event.target.checked ? state.selected.add(row.id) : state.selected.delete(row.id);
        render();
      } });
      box.checked = state.selected.has(row.id);
      const cells = columns.map((c) => {
        const v = cellValue(row, c);
        switch (c.key) {
          case "status": return el("td", {}, statusBadge(v));
          case "prefix": return el("td", {}, el("a", { href: `#/exp/${row.id}`, title: row.directory ? `${row.directory}/${row.prefix}` : row.prefix }, v));
          case "started": return el("td", {}, formatTime(v));
          case "duration": return el("td", { class: "num" }, formatDuration(v));
          default: return el("td", { class: typeof v === "number" ? "num" : "" }, formatValue(v));
        }
      });
      body.append(el("tr", { class: state.selected.has(row.id) ? "selected" : "", "data-experiment": row.id, "data-prefix": row.prefix }, el("td", {}, box), cells));
    }
    const table = el("table", { class: "grid", id: "runs-table" }, el("thead", {}, head), body);
    tableWrap.replaceChildren(table);
    const selectedCount = state.selected.size;
    compareButton.disabled = selectedCount < 2;
    compareButton.textContent = selectedCount ? `Compare selected (${selectedCount})` : "Compare selected";
  }

  filterInput.addEventListener("input", () => {
    state.filter = filterInput.value;
    // Keep the filter in the address (without a hashchange, which would rebuild the view) so it can be shared.
    const query = new URLSearchParams();
    if (directory) query.set("dir", directory);
    if (state.filter) query.set("filter", state.filter);
    history.replaceState(null, "", `${base}${query.toString() ? `?${query}` : ""}`);
    render();
  });

  await load();
  return { destroy() { state.destroyed = true; clearTimeout(state.timer); } };
}

// ---------------- experiment page

const EXPERIMENT_FIELDS = `id namespace workspace directory prefix readme status hostname startedAt completedAt params metricNames
  runs { id status hostname startedAt endedAt error }`;

function renderReadme(text) {
  // A deliberately small Markdown subset: fenced code, headings, lists, inline code, bold, links.
  const container = el("div", { class: "readme" });
  const blocks = text.split(/\n```/);
  blocks.forEach((block, i) => {
    if (i % 2 === 1) {
      container.append(el("pre", {}, block.replace(/^[^\n]*\n/, "")));
      return;
    }
    for (const para of block.replace(/^```/, "").split(/\n\s*\n/)) {
      const lines = para.split("\n").filter((l) => l.trim());
      if (!lines.length) continue;
      const heading = lines[0].match(/^(#{1,6})\s+(.*)$/);
      if (heading && lines.length === 1) { container.append(el(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2]))); continue; }
      if (lines.every((l) => /^\s*[-*]\s+/.test(l))) {
        container.append(el("ul", {}, lines.map((l) => el("li", {}, inline(l.replace(/^\s*[-*]\s+/, ""))))));
        continue;
      }
      container.append(el("p", {}, inline(lines.join(" "))));
    }
  });
  return container;
}

function inline(text) {
  const out = [];
  const pattern = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g;
  let last = 0, match;
  while ((match = pattern.exec(text))) {
    out.push(text.slice(last, match.index));
    if (match[1]) out.push(el("code", {}, match[1]));
    else if (match[2]) out.push(el("b", {}, match[2]));
    else out.push(el("a", { href: match[4], target: "_blank", rel: "noopener" }, match[3]));
    last = pattern.lastIndex;
  }
  out.push(text.slice(last));
  return out;
}

function groupByPrefix(keys) {
  // "train.loss" and "train.acc" share the group "train"; undotted keys form the unnamed group "".
  const groups = new Map();
  for (const key of keys) {
    const dot = key.indexOf(".");
    const group = dot > 0 ? key.slice(0, dot) : "";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(key);
  }
  return [...groups].sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)));
}

async function experimentView(main, experimentId) {
  const data = await api.graphql(`query Exp($id: ID!) { experiment(id: $id) { ${EXPERIMENT_FIELDS} } }`, { id: experimentId });
  let exp = data.experiment;
  if (!exp) {
    main.append(el("p", { class: "error" }, `No experiment with id ${experimentId}.`));
    return null;
  }
  const wsHref = `#/ws/${encodeURIComponent(exp.namespace)}/${encodeURIComponent(exp.workspace)}`;
  setBreadcrumbs([exp.namespace, null], [exp.workspace, wsHref],
    ...(exp.directory ? [[exp.directory, `${wsHref}?dir=${encodeURIComponent(exp.directory)}`]] : []), [exp.prefix, null]);
  // Unfold the navigator down to this experiment.
  let treeKey = `ws:${exp.namespace}/${exp.workspace}`;
  navigator_.toggle(`ns:${exp.namespace}`, true);
  navigator_.toggle(treeKey, true);
  for (const part of exp.directory.split("/").filter(Boolean)) navigator_.toggle(treeKey = `${treeKey}/${part}`, true);

  const state = { charts: new Map(), xMode: "step", timer: null, destroyed: false, offsets: null, metricNames: exp.metricNames.join("\n") };

  const header = el("div", { id: "exp-header" });
  const readmeSection = el("section", { id: "readme" });
  const paramsSection = el("section", { id: "parameters" });
  const metricsSection = el("section", { id: "metrics" });
  const logsSection = el("section", { id: "logs" });
  const filesSection = el("section", { id: "files" });
  main.append(header, readmeSection, paramsSection, metricsSection, logsSection, filesSection);

  function renderHeader() {
    const lastRun = exp.runs[exp.runs.length - 1];
    // Through el(): native replaceChildren would print a null child as the text "null".
    header.replaceChildren(...el("div", {},
      el("h1", {}, exp.prefix, " ", statusBadge(exp.status)),
      el("div", { class: "meta" },
        el("span", {}, "started ", el("b", {}, formatTime(exp.startedAt) || "—")),
        el("span", {}, "duration ", el("b", { id: "exp-duration" }, formatDuration(durationOf(exp)) || "—")),
        el("span", {}, "host ", el("b", {}, exp.hostname || (lastRun && lastRun.hostname) || "—")),
        el("span", {}, "runs ", el("b", {}, exp.runs.length)),
        el("span", {}, "id ", el("code", {}, exp.id))),
      lastRun && lastRun.error ? el("pre", { class: "error" }, lastRun.error) : null).childNodes);
  }

  function renderReadmeSection() {
    readmeSection.replaceChildren();
    if (exp.readme) readmeSection.append(el("h2", {}, "Readme"), el("div", { class: "panel" }, renderReadme(exp.readme)));
  }

  function renderParams() {
    const flat = flatten(exp.params || {});
    const search = el("input", { type: "search", id: "param-search", placeholder: "search parameters…" });
    const body = el("div", { class: "panel" });
    const draw = () => {
      const q = search.value.toLowerCase();
      const keys = Object.keys(flat).sort().filter((k) => !q || k.toLowerCase().includes(q) || formatValue(flat[k]).toLowerCase().includes(q));
      body.replaceChildren();
      if (!keys.length) body.append(el("span", { class: "muted" }, Object.keys(flat).length ? "No parameter matches." : "No parameters."));
      for (const [group, groupKeys] of groupByPrefix(keys)) {
        body.append(el("div", { class: "params-group", "data-group": group },
          group ? el("h3", {}, group) : null,
          el("table", { class: "kv" }, groupKeys.map((k) => el("tr", { "data-key": k },
            el("td", { class: "key" }, group ? k.slice(group.length + 1) : k), el("td", {}, formatValue(flat[k])))))));
      }
    };
    search.addEventListener("input", draw);
    draw();
    paramsSection.replaceChildren(el("h2", {}, "Parameters"), el("div", { class: "toolbar" }, search), body);
  }

  function renderMetrics() {
    for (const chart of state.charts.values()) chart.destroy();
    state.charts.clear();
    const xSelect = el("select", { id: "x-axis" }, el("option", { value: "step" }, "x: step"), el("option", { value: "time" }, "x: wall time"));
    xSelect.value = state.xMode;
    xSelect.addEventListener("change", () => {
      state.xMode = xSelect.value;
      for (const chart of state.charts.values()) chart.setXMode(state.xMode).catch(console.error);
    });
    metricsSection.replaceChildren(el("h2", {}, "Metrics"), el("div", { class: "toolbar" }, xSelect,
      el("span", { class: "muted" }, "drag to zoom (fetches full resolution), double-click to reset")));
    if (!exp.metricNames.length) metricsSection.append(el("p", { class: "muted" }, "No metrics yet."));
    for (const [group, names] of groupByPrefix(exp.metricNames)) {
      const grid = el("div", { class: "chart-group" });
      metricsSection.append(el("div", { class: "metric-group", "data-group": group }, group ? el("h3", {}, `${group}.*`) : null, grid));
      for (const name of names) {
        const countLabel = el("span", { class: "count" });
        const div = el("div", { class: "chart", "data-metric": name });
        grid.append(el("div", { class: "chart-card" }, el("div", { class: "title" }, el("span", {}, name), countLabel), div));
        const chart = new MetricChart(div, [{ experimentId: exp.id, metric: name, label: name }], { xMode: state.xMode });
        chart.onDrawn = (c) => {
          const m = c.loaded[0];
          countLabel.textContent = m.count > m.values.length ? `${m.values.length} of ${m.count} points (min/max envelope)` : `${m.count} points`;
        };
        state.charts.set(name, chart);
      }
    }
    // The charts are in the document, so each can read its width (one layout) and ask for as many points as it has
    // pixels. All of the page's series requests leave together, in this task, before any answer is awaited.
    for (const chart of state.charts.values()) chart.load().catch(showChartError(chart));
  }

  function showChartError(chart) {
    return (error) => { chart.container.textContent = `Could not load: ${error.message}`; chart.container.classList.add("error"); };
  }

  const logLevel = el("select", { id: "log-level" }, ["ALL", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].map((l) => el("option", { value: l }, l)));
  const logSearch = el("input", { type: "search", id: "log-search", placeholder: "search messages…" });
  const logBox = el("div", { class: "logs", id: "log-lines" });
  logsSection.append(el("h2", {}, "Logs"), el("div", { class: "toolbar" }, logLevel, logSearch), logBox);
  logLevel.addEventListener("change", () => loadLogs().catch(console.error));
  logSearch.addEventListener("input", () => loadLogs().catch(console.error));

  async function loadLogs() {
    const level = logLevel.value === "ALL" ? null : logLevel.value;
    const result = await api.graphql(`query Logs($id: ID!, $level: String, $limit: Int) { experiment(id: $id) { logs(level: $level, limit: $limit) { timestamp level message context } } }`,
      { id: exp.id, level, limit: LOG_LIMIT });
    const q = logSearch.value.toLowerCase();
    const logs = result.experiment.logs.filter((l) => !q || (l.message || "").toLowerCase().includes(q));
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
    logBox.replaceChildren(...logs.map((l) => el("div", { class: "log-line", "data-level": l.level },
      el("span", { class: "ts" }, formatTime(l.timestamp)), el("span", { class: `lvl lvl-${l.level}` }, l.level),
      l.message, l.context && Object.keys(l.context).length ? el("span", { class: "ctx" }, JSON.stringify(l.context)) : null)));
    if (!logs.length) logBox.append(el("div", { class: "log-line muted" }, "No log lines."));
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;  // follow the tail of a live run unless the user scrolled up
  }

  async function loadFiles() {
    const result = await api.graphql(`query Files($id: ID!) { experiment(id: $id) { files { path size } } }`, { id: exp.id });
    const files = result.experiment.files;
    const preview = el("div", { class: "preview", id: "file-preview" });
    const rows = files.map((f) => el("tr", { "data-path": f.path },
      el("td", {}, el("code", {}, f.path)), el("td", { class: "muted" }, formatBytes(f.size)),
      el("td", {}, el("a", { href: api.fileUrl(exp.id, f.path), download: f.path.split("/").pop(), onclick: (event) => downloadWithToken(event, exp.id, f.path) }, "download")),
      el("td", {}, el("button", { onclick: () => previewFile(preview, exp.id, f) }, "preview"))));
    filesSection.replaceChildren(el("h2", {}, "Files"), files.length
      ? el("div", { class: "panel" }, el("table", { class: "files" }, rows), preview)
      : el("p", { class: "muted" }, "No files."));
  }

  async function poll() {
    // Cheap change detection: stream offsets move whenever any batch lands; only then refetch what changed.
    const [offsets, fresh] = await Promise.all([
      api.rest(`/experiments/${encodeURIComponent(exp.id)}/streams`),
      api.graphql(`query Exp($id: ID!) { experiment(id: $id) { ${EXPERIMENT_FIELDS} } }`, { id: exp.id }),
    ]);
    if (state.destroyed) return;
    const offsetsKey = JSON.stringify(offsets.streams);
    const changed = offsetsKey !== state.offsets;
    state.offsets = offsetsKey;
    const statusChanged = fresh.experiment.status !== exp.status;
    exp = fresh.experiment;
    renderHeader();
    if (changed || statusChanged) {
      const names = exp.metricNames.join("\n");
      if (names !== state.metricNames) { state.metricNames = names; renderMetrics(); }
      else for (const chart of state.charts.values()) chart.load().catch(console.error);
      renderParams();
      loadLogs().catch(console.error);
      loadFiles().catch(console.error);
    }
    schedulePoll();
  }

  function schedulePoll() {
    clearTimeout(state.timer);
    const running = exp.status === "RUNNING";
    setLive(running);
    header.dataset.live = running ? "on" : "off";
    if (running && !state.destroyed) state.timer = setTimeout(() => poll().catch((e) => { console.error(e); schedulePoll(); }), LIVE_POLL_MS);
  }

  renderHeader();
  renderReadmeSection();
  renderParams();
  renderMetrics();
  await Promise.all([loadLogs(), loadFiles()]);
  if (exp.status === "RUNNING") state.offsets = JSON.stringify((await api.rest(`/experiments/${encodeURIComponent(exp.id)}/streams`)).streams);
  schedulePoll();
  return {
    destroy() {
      state.destroyed = true;
      clearTimeout(state.timer);
      for (const chart of state.charts.values()) chart.destroy();
    },
  };
}

async function downloadWithToken(event, experimentId, path) {
  if (!api.token) return;  // a plain link works when the server needs no token
  event.preventDefault();
  const answer = await api.fetch(api.fileUrl(experimentId, path));
  const url = URL.createObjectURL(await answer.blob());
  const link = el("a", { href: url, download: path.split("/").pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const PREVIEW_LIMIT_BYTES = 2 * 1024 * 1024;

async function previewFile(container, experimentId, file) {
  container.replaceChildren(el("span", { class: "muted" }, `Loading ${file.path}…`));
  const extension = file.path.split(".").pop().toLowerCase();
  const answer = await api.fetch(api.fileUrl(experimentId, file.path));
  if (!answer.ok) { container.replaceChildren(el("span", { class: "error" }, `HTTP ${answer.status}`)); return; }
  const title = el("h3", {}, file.path);
  if (["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp"].includes(extension)) {
    let blob = await answer.blob();
    if (extension === "svg") blob = new Blob([blob], { type: "image/svg+xml" });  // served as octet-stream otherwise
    container.replaceChildren(title, el("img", { src: URL.createObjectURL(blob), alt: file.path }));
    return;
  }
  if (file.size > PREVIEW_LIMIT_BYTES) { container.replaceChildren(title, el("span", { class: "muted" }, "Too large to preview; download it instead.")); return; }
  const text = await answer.text();
  if (extension === "json") {
    try { container.replaceChildren(title, el("pre", { class: "json" }, JSON.stringify(JSON.parse(text), null, 2))); return; } catch { /* show as text */ }
  }
  // Anything else is shown as text when it decodes as text; binary files would only show noise.
  if (/[\u0000-\u0008\u000e-\u001f]/.test(text.slice(0, 4096))) container.replaceChildren(title, el("span", { class: "muted" }, "Binary file; download it instead."));
  else container.replaceChildren(title, el("pre", {}, text));
}

// ---------------- compare

async function compareView(main, ids, initialMetric) {
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
  const allKeys = [...new Set(experiments.flatMap((e) => Object.keys(e.flatParams)))].sort();
  const differing = allKeys.filter((k) => new Set(experiments.map((e) => JSON.stringify(e.flatParams[k] ?? null))).size > 1);
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
  const xSelect = el("select", { id: "x-axis" }, el("option", { value: "step" }, "x: step"), el("option", { value: "time" }, "x: wall time"));
  const chartDiv = el("div", { class: "chart tall", id: "compare-chart" });
  main.append(el("h1", {}, `Compare ${experiments.length} experiments`),
    el("div", { class: "toolbar" }, select, xSelect), el("div", { class: "chart-card" }, chartDiv));

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
    chart = new MetricChart(chartDiv, withMetric.map((e) => ({ experimentId: e.id, metric, label: labelOf(e) })), { xMode: xSelect.value });
    chart.load().catch((error) => { chartDiv.textContent = `Could not load: ${error.message}`; });
  }
  select.addEventListener("change", () => {
    metric = select.value;
    history.replaceState(null, "", `#/compare?ids=${ids.join(",")}&metric=${encodeURIComponent(metric)}`);
    draw();
  });
  xSelect.addEventListener("change", () => chart && chart.setXMode(xSelect.value).catch(console.error));
  draw();
  return { destroy() { if (chart) chart.destroy(); } };
}

// ---------------------------------------------------------------- start

document.getElementById("nav-search").addEventListener("input", (event) => {
  navigator_.query = event.target.value.trim();
  navigator_.render();
});
window.addEventListener("hashchange", route);

(async function start() {
  // The navigator's list and the view's own requests go out together; neither waits for the other or for plotly.
  navigatorReady = navigator_.refresh().catch(console.error);
  await route();
  // A page without charts still readies plotly for the next view, once it has rendered.
  loadPlotly().catch(console.error);
  // New experiments appear in the navigator without a reload.
  setInterval(() => navigator_.refresh().catch(console.error), 10000);
})();
