// The experiment page's Logs section: the newest lines, filtered by level (in the server) and by message text.

import { api } from "./api.js";
import { el } from "./dom.js";
import { formatTime } from "./lib/format.js";

const LOG_LIMIT = 1000;
const LEVELS = ["ALL", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

export class LogsSection {
  constructor(section, experimentId) {
    this.experimentId = experimentId;
    this.level = el("select", { id: "log-level" }, LEVELS.map((l) => el("option", { value: l }, l)));
    this.search = el("input", { type: "search", id: "log-search", placeholder: "search messages…" });
    this.box = el("div", { class: "logs", id: "log-lines" });
    section.append(el("h2", {}, "Logs"), el("div", { class: "toolbar" }, this.level, this.search), this.box);
    this.level.addEventListener("change", () => this.load().catch(console.error));
    this.search.addEventListener("input", () => this.load().catch(console.error));
  }

  async load() {
    const level = this.level.value === "ALL" ? null : this.level.value;
    const result = await api.graphql(`query Logs($id: ID!, $level: String, $limit: Int) { experiment(id: $id) { logs(level: $level, limit: $limit) { timestamp level message context } } }`,
      { id: this.experimentId, level, limit: LOG_LIMIT });
    const q = this.search.value.toLowerCase();
    const logs = result.experiment.logs.filter((l) => !q || (l.message || "").toLowerCase().includes(q));
    const box = this.box;
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.replaceChildren(...logs.map((l) => el("div", { class: "log-line", "data-level": l.level },
      el("span", { class: "ts" }, formatTime(l.timestamp)), el("span", { class: `lvl lvl-${l.level}` }, l.level),
      l.message, l.context && Object.keys(l.context).length ? el("span", { class: "ctx" }, JSON.stringify(l.context)) : null)));
    if (!logs.length) box.append(el("div", { class: "log-line muted" }, "No log lines."));
    if (atBottom) box.scrollTop = box.scrollHeight;  // follow the tail of a live run unless the user scrolled up
  }
}
