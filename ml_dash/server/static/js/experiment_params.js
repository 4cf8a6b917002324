// The experiment page's Parameters section: flattened parameters grouped by their first dotted segment, with a search
// box over keys and values.

import { el } from "./dom.js";
import { formatValue } from "./lib/format.js";
import { flatten, groupByPrefix } from "./lib/rows.js";

export function renderParams(section, params) {
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
  section.replaceChildren(el("h2", {}, "Parameters"), el("div", { class: "toolbar" }, search), body);
}
