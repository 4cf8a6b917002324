// The experiment page (#/exp/<id>): lays out its sections (header, admin, readme, parameters, environment, metrics,
// system, logs, files; each its own module) and keeps them live while the experiment is RUNNING.

import { api } from "./api.js";
import { IDLE_POLL_MS, LIVE_POLL_MS, el, setBreadcrumbs, setLive, statusBadge } from "./dom.js";
import { loadFiles } from "./experiment_files.js";
import { LogsSection } from "./experiment_logs.js";
import { MediaSection } from "./experiment_media.js";
import { MetricsSection } from "./experiment_metrics.js";
import { renderParams } from "./experiment_params.js";
import { durationOf, formatDuration, formatTime } from "./lib/format.js";
import { readmeElement } from "./markdown.js";
import { navigator_ } from "./navigator.js";
import { renderRunAdmin } from "./run_admin.js";
import { renderRuns } from "./experiment_runs.js";
import { hasSuperseded } from "./lib/runs.js";
import { SystemPanels } from "./system_panel.js";

const EXPERIMENT_FIELDS = `id namespace workspace directory prefix readme readmeHtml status hostname startedAt completedAt params metricNames
  metricSummary { name last min max count } runs { id status hostname startedAt endedAt error branchStep supersededFrom jobId rank } lineage`;
const EXPERIMENT_QUERY = `query Exp($id: ID!) { experiment(id: $id) { ${EXPERIMENT_FIELDS} } }`;
// The live poll leaves the readme out: it is rendered once, when the page opens (the server prices readmeHtml by size).
const POLL_QUERY = `query Exp($id: ID!) { experiment(id: $id) { ${EXPERIMENT_FIELDS.replace(" readme readmeHtml", "")} } }`;

function renderHeader(header, exp) {
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

function renderReadme(section, exp) {
  section.replaceChildren();
  if (exp.readme) section.append(el("h2", {}, "Readme"), el("div", { class: "panel" }, readmeElement(exp.readmeHtml, exp.readme)));
}

// The trail and the navigator's open folders lead to this experiment.
function showWhere(exp) {
  const wsHref = `#/ws/${encodeURIComponent(exp.namespace)}/${encodeURIComponent(exp.workspace)}`;
  setBreadcrumbs([exp.namespace, null], [exp.workspace, wsHref],
    ...(exp.directory ? [[exp.directory, `${wsHref}?dir=${encodeURIComponent(exp.directory)}`]] : []), [exp.prefix, null]);
  let treeKey = `ws:${exp.namespace}/${exp.workspace}`;
  navigator_.toggle(`ns:${exp.namespace}`, true);
  navigator_.toggle(treeKey, true);
  for (const part of exp.directory.split("/").filter(Boolean)) navigator_.toggle(treeKey = `${treeKey}/${part}`, true);
}

// The metrics section's layout changes with the names and with which metrics hold a single point (a number in the
// summary block, not a chart).
const layoutKey = (exp) => `${exp.metricNames.join("\n")}|${(exp.metricSummary || []).filter((m) => m.count === 1).map((m) => m.name).join("\n")}`;

const readOffsets = (id) => api.rest(`/experiments/${encodeURIComponent(id)}/streams`);

export async function experimentView(main, experimentId) {
  const data = await api.graphql(EXPERIMENT_QUERY, { id: experimentId });
  let exp = data.experiment;
  if (!exp) {
    // Not the previous page's trail: say where we are.
    setBreadcrumbs(["experiment", null], [experimentId, null]);
    main.append(el("p", { class: "error" }, data.errors ? `Could not load experiment ${experimentId}: ${data.errors.join("; ")}`
      : `No experiment with id ${experimentId}.`));
    return null;
  }
  showWhere(exp);

  const state = { timer: null, destroyed: false, offsets: null, metricNames: layoutKey(exp) };
  const header = el("div", { id: "exp-header" });
  const readmeSection = el("section", { id: "readme" });
  const paramsSection = el("section", { id: "parameters" });
  const metricsSection = el("section", { id: "metrics" });
  const mediaSection = el("section", { id: "media" });
  const logsSection = el("section", { id: "logs" });
  const filesSection = el("section", { id: "files" });
  const adminSection = el("section", { id: "run-admin" });
  const runsSection = el("section", { id: "runs" });  // experiment_runs.js: the runs strip and the lineage
  const system = new SystemPanels(exp.id);  // the "System" chart group and the "Environment" panel
  // One bar of section links, sticky under the top bar: a long readme or config never buries the charts.
  const overview = el("div", { id: "overview", class: "page-section" }, header, runsSection, adminSection, readmeSection, paramsSection, system.environmentSection);
  const sections = [["overview", "Overview", overview], ["metrics", "Charts", metricsSection], ["media", "Media", mediaSection], ["system", "System", system.section],
    ["logs", "Logs", logsSection], ["files", "Files", filesSection]];
  const bar = el("nav", { class: "section-bar", id: "section-bar" }, sections.map(([id, label, target]) =>
    el("button", { class: "section-link", "data-section": id, onclick: () => target.scrollIntoView({ block: "start" }) }, label)));
  main.append(bar, overview, metricsSection, mediaSection, system.section, logsSection, filesSection);
  renderRunAdmin(adminSection, exp.id).catch(console.error);
  const metrics = new MetricsSection(metricsSection, exp.id);
  const logs = new LogsSection(logsSection, exp.id);

  async function poll() {
    // Cheap change detection: stream offsets move whenever any batch lands; only then refetch what changed. A page
    // whose run is not RUNNING (not started yet, or finished) reads only the offsets, so it still notices a run
    // that starts (or resumes) after it was opened.
    const running = exp.status === "RUNNING";
    const offsets = await readOffsets(exp.id);
    if (state.destroyed) return;
    const offsetsKey = JSON.stringify(offsets.streams);
    const changed = offsetsKey !== state.offsets;
    state.offsets = offsetsKey;
    if (!running && !changed) { schedulePoll(); return; }
    const fresh = await api.graphql(POLL_QUERY, { id: exp.id });
    if (state.destroyed || !fresh.experiment) return;
    const statusChanged = fresh.experiment.status !== exp.status;
    exp = { ...fresh.experiment, readme: exp.readme, readmeHtml: exp.readmeHtml };
    renderHeader(header, exp);
    renderRuns(runsSection, exp);
    metrics.offerSuperseded(hasSuperseded(exp.runs));
    if (changed || statusChanged) {
      const names = layoutKey(exp);
      if (names !== state.metricNames) { state.metricNames = names; metrics.render(exp.metricNames, exp.metricSummary); }
      else metrics.reload();
      renderParams(paramsSection, exp.params);
      logs.load().catch(console.error);
      loadFiles(filesSection, exp.id).catch(console.error);
      system.refresh().catch(console.error);
    }
    schedulePoll();
  }

  // Polls while the page is visible: every LIVE_POLL_MS while RUNNING, less often otherwise (offsets only); a
  // hidden tab stops and polls at once when shown again.
  function schedulePoll() {
    clearTimeout(state.timer);
    const running = exp.status === "RUNNING";
    setLive(running);
    header.dataset.live = running ? "on" : "off";
    if (state.destroyed || document.hidden) return;
    state.timer = setTimeout(() => poll().catch((e) => { console.error(e); schedulePoll(); }), running ? LIVE_POLL_MS : IDLE_POLL_MS);
  }
  const onVisible = () => { if (!document.hidden && !state.destroyed) { clearTimeout(state.timer); poll().catch((e) => { console.error(e); schedulePoll(); }); } };
  document.addEventListener("visibilitychange", onVisible);

  renderHeader(header, exp);
  renderRuns(runsSection, exp);
  metrics.offerSuperseded(hasSuperseded(exp.runs));
  renderReadme(readmeSection, exp);
  renderParams(paramsSection, exp.params);
  metrics.render(exp.metricNames, exp.metricSummary);
  system.refresh().catch(console.error);
  await Promise.all([logs.load(), loadFiles(filesSection, exp.id),
    new MediaSection(mediaSection, exp.id).load().catch(console.error)]);
  state.offsets = JSON.stringify((await readOffsets(exp.id)).streams);
  schedulePoll();
  return {
    destroy() {
      state.destroyed = true;
      clearTimeout(state.timer);
      document.removeEventListener("visibilitychange", onVisible);
      metrics.destroy();
      system.destroy();
    },
  };
}
