// The experiment page's runs as segments of one history (docs/branches.md): a strip, in start order, of where each
// run (or distributed job) began, its status and the steps it still shows; the lineage of forks (parent with its fork
// step, children) with a button that overlays the family in the compare view; and the charts' "show superseded"
// toggle. The segment logic is lib/runs.js.

import { el, statusBadge } from "./dom.js";
import { beginsAt, compareHref, lineageIds, runSegments, shownRange, stripGeometry } from "./lib/runs.js";

const expLink = (e) => el("a", { href: `#/exp/${encodeURIComponent(e.id)}`, class: "lineage-link", "data-id": e.id },
  e.directory ? `${e.directory}/${e.prefix}` : e.prefix);

// section: the element to fill; exp: the experiment ({id, runs, lineage, metricNames}). Nothing is shown for a plain
// experiment of one run and no forks.
export function renderRuns(section, exp) {
  const segments = runSegments(exp.runs);
  const lineage = exp.lineage || { parent: null, children: [] };
  const forked = lineage.parent || (lineage.children || []).length;
  section.replaceChildren();
  if (segments.length < 2 && !forked) return;
  if (segments.length >= 2) {
    const bars = stripGeometry(segments);
    section.append(el("h2", {}, "Runs"), el("div", { class: "panel runs-strip", id: "runs-strip" },
      segments.map((s, i) => el("div", { class: `run-segment${s.superseded ? " superseded" : ""}`, "data-run": s.id,
        "data-from": s.from ?? "", "data-to": s.to ?? "", "data-ranks": s.ranks },
      el("span", { class: "run-index" }, `#${i + 1}`), statusBadge(s.status),
      el("span", { class: "run-begins" }, beginsAt(s)),
      el("span", { class: "run-bar-track" }, el("span", { class: "run-bar", style: `left:${bars[i].left}%;width:${bars[i].width}%` })),
      el("span", { class: "run-shows" }, shownRange(s)),
      s.ranks > 1 ? el("span", { class: "muted run-ranks" }, `${s.ranks} ranks`) : null,
      el("code", { class: "muted" }, s.id.slice(0, 8))))));
  }
  if (forked) {
    const ids = lineageIds(exp.id, lineage);
    section.append(el("h2", {}, "Lineage"), el("div", { class: "panel", id: "lineage" },
      lineage.parent ? el("div", { class: "lineage-parent" }, "forked from ", expLink(lineage.parent),
        ` at step ${lineage.parent.fork_step}`) : null,
      (lineage.children || []).length ? el("div", { class: "lineage-children" }, "forks: ",
        lineage.children.flatMap((c, i) => [i ? ", " : "", expLink(c), ` (at step ${c.fork_step})`])) : null,
      el("a", { class: "button", id: "lineage-overlay", href: compareHref(ids, (exp.metricNames || []).slice(0, 1)) },
        `Overlay ${ids.length} in compare`)));
  }
}

// The charts' toolbar checkbox: off by default; onChange(checked).
export function supersededToggle(checked, onChange) {
  const box = el("input", { type: "checkbox", id: "show-superseded" });
  box.checked = checked;
  box.addEventListener("change", () => onChange(box.checked));
  return el("label", { class: "superseded-toggle", title: "also draw, faintly, the points later runs replaced" }, box, " show superseded");
}
