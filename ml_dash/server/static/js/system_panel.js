// The experiment page's "System" chart group (the sampler's system/ series, on a wall-time axis) and its collapsible
// "Environment" panel (git, command line, interpreter, packages). docs/system-metrics.md says what they hold.

import { api } from "./api.js";
import { loadPlotly } from "./charts.js";
import { el } from "./dom.js";
import { formatTime, plotlyText } from "./lib/format.js";
import { SYSTEM_PREFIX as PREFIX, systemChartGroups } from "./lib/rows.js";

export class SystemPanels {
  constructor(experimentId) {
    this.experimentId = experimentId;
    this.section = el("section", { id: "system" });
    this.environmentSection = el("section", { id: "environment" });
    this.namesKey = null;
    this.environmentKey = null;
    this.charts = [];
    this.destroyed = false;
  }

  // Fetch the names and the environment; redraw what changed, then (re)load every chart's series.
  async refresh() {
    const data = await api.graphql("query System($id: ID!) { experiment(id: $id) { systemMetricNames environment } }",
      { id: this.experimentId });
    if (this.destroyed || !data.experiment) return;
    const { systemMetricNames: names, environment } = data.experiment;
    const environmentKey = JSON.stringify(environment);
    if (environmentKey !== this.environmentKey) { this.environmentKey = environmentKey; this.renderEnvironment(environment); }
    if (names.join("\n") !== this.namesKey) { this.namesKey = names.join("\n"); this.renderCharts(names); }
    this.section.dataset.state = "ready";  // names known, charts laid out (each chart marks its own drawing)
    await Promise.all(this.charts.map((chart) => this.loadChart(chart)));
  }

  renderCharts(names) {
    this.purge();
    this.section.replaceChildren();
    if (!names.length) return;  // no sampler rows (turned off, or a run shorter than one interval): no group
    const grid = el("div", { class: "chart-group" });
    this.section.append(el("h2", {}, "System"), el("div", { class: "metric-group", "data-group": "system" }, grid));
    for (const group of systemChartGroups(names)) {
      const div = el("div", { class: "system-chart", "data-system-chart": group.title });
      grid.append(el("div", { class: "chart-card" }, el("div", { class: "title" }, el("span", {}, group.title)), div));
      this.charts.push({ ...group, div, request: 0, plotted: false });
    }
  }

  async loadChart(chart) {
    const number = ++chart.request;
    const defs = ["$id: ID!", "$points: Int"];
    const variables = { id: this.experimentId, points: Math.max(100, Math.round(chart.div.clientWidth || 600)) };
    const fields = chart.names.map((name, i) => {
      defs.push(`$m${i}: String!`);
      variables[`m${i}`] = name;
      return `s${i}: metric(name: $m${i}, maxPoints: $points) { count steps values }`;
    });
    const [data, Plotly] = await Promise.all([
      api.graphql(`query SystemChart(${defs.join(", ")}) { experiment(id: $id) { ${fields.join(" ")} } }`, variables),
      loadPlotly(),
    ]);
    if (this.destroyed || number !== chart.request || !data.experiment) return;
    const series = chart.names.map((name, i) => data.experiment[`s${i}`] || { count: 0, steps: [], values: [] });
    // A system series' steps are its timestamps in milliseconds (the server stores it so): a date axis as they are.
    const traces = series.map((m, i) => ({
      type: "scatter", mode: m.values.length < 2 ? "markers" : "lines", name: plotlyText(chart.names[i].slice(PREFIX.length)),
      x: m.steps, y: m.values, connectgaps: false, line: { width: 1.5 }, hovertemplate: "%{y}<extra>%{fullData.name}</extra>",
    }));
    // A count (threads) reads in whole numbers: no tick at 11.5 threads.
    const yaxis = { autorange: true };
    if (chart.integer) {
      const values = series.flatMap((m) => m.values).filter((v) => typeof v === "number");
      const span = values.length ? Math.max(...values) - Math.min(...values) : 0;
      Object.assign(yaxis, { tickformat: "d", tick0: 0, dtick: Math.max(1, Math.ceil(span / 5)) });
    }
    const layout = { margin: { l: 50, r: 10, t: 8, b: 32 }, showlegend: traces.length > 1, legend: { orientation: "h", y: -0.22 },
                     xaxis: { type: "date", autorange: true }, yaxis, hovermode: "x" };
    Plotly.react(chart.div, traces, layout, { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] });
    chart.plotted = true;
    chart.div.dataset.count = series.map((m) => m.count).join(",");
    chart.div.dataset.series = chart.names.map((name) => name.slice(PREFIX.length)).join(",");
    chart.div.dataset.state = "ready";
  }

  renderEnvironment(env) {
    this.environmentSection.replaceChildren();
    if (!env || typeof env !== "object") return;
    // An environment is whatever a client PUT: every value is shown as text, so an odd type (a numeric commit, a
    // command given as one string) can never throw and hide the whole panel.
    const text = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
    const field = (obj, key) => (obj && typeof obj === "object" ? obj[key] : undefined);
    const rows = [];
    const row = (key, value) => { if (value !== null && value !== undefined && value !== "") rows.push(el("tr", { "data-key": key }, el("td", { class: "key" }, key), el("td", {}, value))); };
    const git = env.git && typeof env.git === "object" ? env.git : null;
    const commit = text(field(git, "commit"));
    if (git) {
      row("git commit", commit ? el("code", {}, commit) : "(no commits)");
      row("git branch", text(git.branch) || "(detached)");
      row("git remote", text(git.remote));
      row("git dirty", git.dirty === null || git.dirty === undefined ? null : (git.dirty ? "yes" : "no"));
      row("code diff", text(git.diff));
    }
    row("command", env.command === undefined || env.command === null ? null
      : el("code", {}, Array.isArray(env.command) ? env.command.map(text).join(" ") : text(env.command)));
    row("working directory", text(env.cwd));
    if (env.python) row("python", `${text(field(env.python, "version"))} (${text(field(env.python, "implementation"))}) ${text(field(env.python, "executable"))}`.trim());
    if (env.os) row("os", text(field(env.os, "platform")));
    row("host", text(env.hostname));
    row("user", text(env.user));
    if (env.torch) row("torch", `${text(field(env.torch, "version"))}${field(env.torch, "cuda") ? ` (CUDA ${text(env.torch.cuda)})` : " (no CUDA build)"}`);
    row("captured", typeof env.captured_at === "number" ? formatTime(env.captured_at) : text(env.captured_at));
    const packages = env.packages && typeof env.packages === "object" && !Array.isArray(env.packages) ? Object.entries(env.packages) : [];
    const packageTable = el("table", { class: "kv", id: "environment-packages" },
      packages.map(([name, version]) => el("tr", { "data-package": name }, el("td", { class: "key" }, name), el("td", {}, text(version)))));
    const details = el("details", { id: "environment-panel", class: "panel" },
      el("summary", {}, `Environment${commit ? ` · ${commit.slice(0, 10)}${git.dirty ? " (dirty)" : ""}` : ""}`),
      el("table", { class: "kv" }, rows),
      packages.length ? el("details", { id: "environment-packages-panel" }, el("summary", {}, `${packages.length} installed packages`), packageTable) : null);
    this.environmentSection.append(el("h2", {}, "Environment"), details);
  }

  purge() {
    for (const chart of this.charts) {
      chart.request++;
      if (chart.plotted && window.Plotly) window.Plotly.purge(chart.div);
    }
    this.charts = [];
  }

  destroy() {
    this.destroyed = true;
    this.purge();
  }
}
