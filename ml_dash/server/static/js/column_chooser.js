// The runs table's column chooser: every column with a box to show it, a pin (pinned columns come first and stay
// in view when the table scrolls sideways) and up / down to reorder; a search box narrows the list (a transformers
// run has ~170 parameters). Choices are kept per workspace in the browser's localStorage (lib/columns.js).

import { el } from "./dom.js";
import { arrange, emptyPrefs, move, parsePrefs, prefsKey, setPinned, setShown } from "./lib/columns.js";

export class ColumnChooser {
  // onChange(): the choices changed (the table re-renders); columnsOf(): {columns, defaults} as the table has them.
  constructor(namespace, workspace, { onChange, columnsOf }) {
    this.key = prefsKey(namespace, workspace);
    this.prefs = parsePrefs(readStorage(this.key));
    Object.assign(this, { onChange, columnsOf });
    this.search = el("input", { type: "search", id: "column-search", placeholder: "find a column…" });
    this.list = el("ul", { class: "column-list", id: "column-list" });
    this.panel = el("div", { class: "panel column-chooser", id: "column-chooser", hidden: true },
      el("div", { class: "toolbar" }, this.search,
        el("button", { id: "columns-reset", onclick: () => this.update(emptyPrefs()) }, "Defaults"),
        el("span", { class: "muted", id: "column-summary" })),
      this.list);
    this.button = el("button", { id: "columns-button", onclick: () => this.toggle() }, "Columns");
    this.search.addEventListener("input", () => this.draw());
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    if (open) this.draw();
  }

  update(prefs) {
    this.prefs = prefs;
    writeStorage(this.key, JSON.stringify(prefs));
    this.draw();
    this.onChange();
  }

  draw() {
    if (this.panel.hidden) return;
    const { columns, defaults } = this.columnsOf();
    const all = arrange(columns, this.prefs, defaults);
    const q = this.search.value.trim().toLowerCase();
    const shown = q ? all.filter((c) => c.label.toLowerCase().includes(q) || (c.kind || "").includes(q)) : all;
    this.panel.querySelector("#column-summary").textContent = `${all.filter((c) => c.shown || c.pinned).length} of ${all.length} columns shown`;
    this.list.replaceChildren(...shown.slice(0, 300).map((c) => {
      const box = el("input", { type: "checkbox", class: "column-shown", onchange: (e) => this.update(setShown(this.prefs, c.key, e.target.checked)) });
      box.checked = c.shown || c.pinned;
      return el("li", { "data-column": c.key, class: c.pinned ? "pinned" : "" },
        el("label", {}, box, " ", el("span", { class: c.kind || "" }, c.label), c.kind ? el("span", { class: "muted" }, ` ${c.kind}`) : null),
        el("button", { class: "column-pin", title: c.pinned ? "unpin" : "pin to the left",
          onclick: () => this.update(setPinned(this.prefs, c.key, !c.pinned)) }, c.pinned ? "unpin" : "pin"),
        el("button", { class: "column-up", title: "move left", onclick: () => this.update(move(this.prefs, columns, defaults, c.key, -1)) }, "↑"),
        el("button", { class: "column-down", title: "move right", onclick: () => this.update(move(this.prefs, columns, defaults, c.key, 1)) }, "↓"));
    }));
  }
}

// localStorage may be absent or refuse (private windows, quotas): the choices then last for the page only.
function readStorage(key) {
  try { return window.localStorage.getItem(key); } catch { return null; }
}

function writeStorage(key, value) {
  try { window.localStorage.setItem(key, value); } catch { /* kept in memory only */ }
}
