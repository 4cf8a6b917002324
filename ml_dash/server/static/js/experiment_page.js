// The experiment page (#/exp/<id>): header, readme, parameters, metric charts, logs, file downloads and previews; live while RUNNING.

import { api } from "./api.js";
import { controlsToolbar, defaultControls } from "./chart_controls.js";
import { MetricChart } from "./charts.js";
import { readmeElement } from "./markdown.js";
import { navigator_ } from "./navigator.js";
import { renderRunAdmin } from "./run_admin.js";
import { SystemPanels } from "./system_panel.js";
import {
  LIVE_POLL_MS, durationOf, el, flatten, formatBytes, formatDuration, formatTime, formatValue, setBreadcrumbs, setLive, statusBadge,
} from "./util.js";

const LOG_LIMIT = 1000;

const EXPERIMENT_FIELDS = `id namespace workspace directory prefix readme readmeHtml status hostname startedAt completedAt params metricNames
  runs { id status hostname startedAt endedAt error }`;
// The live poll leaves the readme out: it is rendered once, when the page opens (the server prices readmeHtml by size).
const POLL_FIELDS = EXPERIMENT_FIELDS.replace(" readme readmeHtml", "");

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

export async function experimentView(main, experimentId) {
  const data = await api.graphql(`query Exp($id: ID!) { experiment(id: $id) { ${EXPERIMENT_FIELDS} } }`, { id: experimentId });
  let exp = data.experiment;
  if (!exp) {
    // Not the previous page's trail: say where we are.
    setBreadcrumbs(["experiment", null], [experimentId, null]);
    main.append(el("p", { class: "error" }, data.errors ? `Could not load experiment ${experimentId}: ${data.errors.join("; ")}`
      : `No experiment with id ${experimentId}.`));
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

  const state = { charts: new Map(), controls: defaultControls(), timer: null, destroyed: false, offsets: null, metricNames: exp.metricNames.join("\n") };

  const header = el("div", { id: "exp-header" });
  const readmeSection = el("section", { id: "readme" });
  const paramsSection = el("section", { id: "parameters" });
  const metricsSection = el("section", { id: "metrics" });
  const logsSection = el("section", { id: "logs" });
  const filesSection = el("section", { id: "files" });
  const adminSection = el("section", { id: "run-admin" });
  const system = new SystemPanels(exp.id);  // the "System" chart group and the "Environment" panel
  main.append(header, adminSection, readmeSection, paramsSection, system.environmentSection, metricsSection,
    system.section, logsSection, filesSection);
  renderRunAdmin(adminSection, exp.id).catch(console.error);

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
    if (exp.readme) readmeSection.append(el("h2", {}, "Readme"), el("div", { class: "panel" }, readmeElement(exp.readmeHtml, exp.readme)));
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
    const controls = controlsToolbar(state.controls, (_, what) => {
      for (const chart of state.charts.values()) chart.update(what).catch(console.error);
    });
    metricsSection.replaceChildren(el("h2", {}, "Metrics"), el("div", { class: "toolbar" }, controls,
      el("span", { class: "muted" }, "drag to zoom (fetches full resolution), double-click to reset")));
    if (!exp.metricNames.length) metricsSection.append(el("p", { class: "muted" }, "No metrics yet."));
    for (const [group, names] of groupByPrefix(exp.metricNames)) {
      const grid = el("div", { class: "chart-group" });
      metricsSection.append(el("div", { class: "metric-group", "data-group": group }, group ? el("h3", {}, `${group}.*`) : null, grid));
      for (const name of names) {
        const countLabel = el("span", { class: "count" });
        const div = el("div", { class: "chart", "data-metric": name });
        grid.append(el("div", { class: "chart-card" }, el("div", { class: "title" }, el("span", {}, name), countLabel), div));
        const chart = new MetricChart(div, [{ experimentId: exp.id, metric: name, label: name }], { controls: state.controls });
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
      el("td", {}, previewable(f.path) ? el("button", { onclick: () => previewFile(preview, exp.id, f) }, "preview") : null)));
    filesSection.replaceChildren(el("h2", {}, "Files"), files.length
      ? el("div", { class: "panel" }, el("table", { class: "files" }, rows), preview)
      : el("p", { class: "muted" }, "No files."));
  }

  async function poll() {
    // Cheap change detection: stream offsets move whenever any batch lands; only then refetch what changed.
    const [offsets, fresh] = await Promise.all([
      api.rest(`/experiments/${encodeURIComponent(exp.id)}/streams`),
      api.graphql(`query Exp($id: ID!) { experiment(id: $id) { ${POLL_FIELDS} } }`, { id: exp.id }),
    ]);
    if (state.destroyed) return;
    const offsetsKey = JSON.stringify(offsets.streams);
    const changed = offsetsKey !== state.offsets;
    state.offsets = offsetsKey;
    const statusChanged = fresh.experiment.status !== exp.status;
    exp = { ...fresh.experiment, readme: exp.readme, readmeHtml: exp.readmeHtml };
    renderHeader();
    if (changed || statusChanged) {
      const names = exp.metricNames.join("\n");
      if (names !== state.metricNames) { state.metricNames = names; renderMetrics(); }
      else for (const chart of state.charts.values()) chart.load().catch(console.error);
      renderParams();
      loadLogs().catch(console.error);
      loadFiles().catch(console.error);
      system.refresh().catch(console.error);
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
  system.refresh().catch(console.error);
  await Promise.all([loadLogs(), loadFiles()]);
  if (exp.status === "RUNNING") state.offsets = JSON.stringify((await api.rest(`/experiments/${encodeURIComponent(exp.id)}/streams`)).streams);
  schedulePoll();
  return {
    destroy() {
      state.destroyed = true;
      clearTimeout(state.timer);
      for (const chart of state.charts.values()) chart.destroy();
      system.destroy();
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
const IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp"];
// Only files that can be shown get a preview button; a checkpoint or an archive is a download, not a "binary" notice.
const TEXT_EXTENSIONS = ["json", "jsonl", "txt", "md", "log", "csv", "tsv", "yaml", "yml", "toml", "ini", "cfg", "py", "sh",
  "xml", "html", "js", "ts", "diff", "patch", "out", "err"];

function previewable(path) {
  const extension = path.includes(".") ? path.split(".").pop().toLowerCase() : "";
  return IMAGE_EXTENSIONS.includes(extension) || TEXT_EXTENSIONS.includes(extension);
}

async function previewFile(container, experimentId, file) {
  container.replaceChildren(el("span", { class: "muted" }, `Loading ${file.path}…`));
  const extension = file.path.split(".").pop().toLowerCase();
  const answer = await api.fetch(api.fileUrl(experimentId, file.path));
  if (!answer.ok) { container.replaceChildren(el("span", { class: "error" }, `HTTP ${answer.status}`)); return; }
  const title = el("h3", {}, file.path);
  if (IMAGE_EXTENSIONS.includes(extension)) {
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
