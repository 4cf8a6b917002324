// The experiment page's Parameters section: flattened parameters grouped by their first dotted segment, with a search
// box over keys and values, in a panel that starts collapsed when the run has many parameters (a transformers config
// is ~170 rows, 3,000 px) so the charts below stay within reach.

import { el } from "./dom.js";
import { formatValue } from "./lib/format.js";
import { flatten, groupByPrefix } from "./lib/rows.js";

const OPEN_UP_TO = 30;  // parameters shown open; more start collapsed

export function renderParams(section, params) {
  const wasOpen = section.querySelector("#parameters-panel");  // a live refresh keeps the user's choice
  const flat = flatten(params || {});
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
  const count = Object.keys(flat).length;
  const details = el("details", { id: "parameters-panel", open: wasOpen ? wasOpen.open : count <= OPEN_UP_TO },
    el("summary", {}, el("h2", {}, "Parameters"), el("span", { class: "muted" }, ` ${count} parameter${count === 1 ? "" : "s"}`)),
    el("div", { class: "toolbar" }, search), body);
  section.replaceChildren(details);
}
