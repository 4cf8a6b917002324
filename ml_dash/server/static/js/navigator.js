// The navigator on the left: namespace → workspace → directory → experiment, read from the server a level at a time
// as folders open (Query.tree gives each folder's name and count, computed by the database; a folder's own
// experiments come a page at a time from experimentPage), and searched by the server (Query.search). The page never
// loads every experiment: the list of 10,000 it once read took ~1 s of the page's main thread on a big server (and
// stopped there); a level is one small answer whatever the server holds.

import { api } from "./api.js";
import { el } from "./dom.js";
import { alertBadges } from "./alert_badges.js";

const EXPERIMENTS_PAGE = 100;  // a folder's own experiments per read; "more" reads the next page
const SEARCH_LIMIT = 50;
const SEARCH_DELAY_MS = 150;  // typing: one search per pause, not per key
const ROOT = "root";

export const navigator_ = {
  levels: new Map(),  // key → {where: {ns, ws, dir}, folders: [{name, count}], experiments, total, pages, ready}
  loaded: false,
  openNodes: new Set(JSON.parse(sessionStorage.getItem("mlDashOpen") || "[]")),
  query: "",
  results: null,  // {query, items}: the server's answer to the search in the box
  searchTimer: null,

  // Reads the top level again and every open level already read, so new experiments appear without a reload.
  async refresh() {
    const keys = [ROOT, ...[...this.levels.keys()].filter((key) => this.openNodes.has(key))];
    await Promise.all([...keys.map((key) => this.load(key, key === ROOT ? {} : this.levels.get(key).where, true)),
      alertBadges.refresh()]);  // the open alerts' badges beside the runs
    this.loaded = true;
    this.render();
  },

  toggle(key, open) {
    if (open ?? !this.openNodes.has(key)) this.openNodes.add(key); else this.openNodes.delete(key);
    sessionStorage.setItem("mlDashOpen", JSON.stringify([...this.openNodes]));
  },

  // The level under `key` (a namespace's workspaces, a workspace's or directory's folders and own experiments):
  // its read in flight, or a fresh read when `again` or never read.
  load(key, where, again = false) {
    const level = this.levels.get(key) || { where, folders: [], experiments: [], total: 0, pages: 1, ready: false, reading: null };
    this.levels.set(key, level);
    if (level.reading) return level.reading;
    if (level.ready && !again) return Promise.resolve(level);
    level.reading = this.read(where, level.pages * EXPERIMENTS_PAGE).then((found) => {
      Object.assign(level, found, { ready: true, reading: null });
      return level;
    }, (error) => { level.reading = null; throw error; });
    return level.reading;
  },

  async read({ ns, ws, dir }, limit) {
    if (ws === undefined) {
      const data = await api.graphql("query NavTree($ns: String) { tree(namespace: $ns) { name count } }", { ns: ns ?? null });
      return { folders: data.tree, experiments: [], total: 0 };
    }
    const data = await api.graphql(`query NavFolder($ns: String!, $ws: String!, $dir: String!, $limit: Int) {
      tree(namespace: $ns, workspace: $ws, directory: $dir) { name count }
      here: experimentPage(namespace: $ns, workspace: $ws, directory: $dir, orderBy: "prefix", limit: $limit) {
        total items { id prefix status } } }`, { ns, ws, dir, limit });
    return { folders: data.tree, experiments: data.here.items, total: data.here.total };
  },

  loadThenRender(key, where, again = false) {
    this.load(key, where, again).then(() => this.render(), (error) => {
      console.error(error);
      const level = this.levels.get(key);
      if (level && !level.ready) Object.assign(level, { ready: true, error: error.message });
      this.render();
    });
  },

  // The namespaces' workspaces with their counts and RUNNING experiments, for the home view.
  async workspaces() {
    const namespaces = (await this.load(ROOT, {}, !this.loaded)).folders;
    if (!namespaces.length) return [];
    const fields = namespaces.map((_, i) => `w${i}: tree(namespace: $n${i}) { name count }`).join(" ");
    const variables = Object.fromEntries(namespaces.map((n, i) => [`n${i}`, n.name]));
    const data = await api.graphql(`query NavWorkspaces(${namespaces.map((_, i) => `$n${i}: String!`).join(", ")}) { ${fields}
      running: experimentPage(filter: "status = 'RUNNING'", limit: 10000) { items { namespace workspace } } }`, variables);
    const running = new Map();
    for (const e of (data.running ? data.running.items : [])) {
      const key = `${e.namespace}\u0000${e.workspace}`;
      running.set(key, (running.get(key) || 0) + 1);
    }
    return namespaces.flatMap((n, i) => data[`w${i}`].map((w) => ({
      namespace: n.name, workspace: w.name, total: w.count, running: running.get(`${n.name}\u0000${w.name}`) || 0 })));
  },

  render() {
    const container = document.getElementById("nav-tree");
    if (this.query) { this.renderSearch(container); return; }
    this.results = null;
    const root = this.levels.get(ROOT);
    if (!root || !root.ready) {
      if (!root) this.loadThenRender(ROOT, {});
      return;  // rendered once the top level arrives
    }
    container.replaceChildren();
    if (root.error) { container.append(el("p", { class: "error" }, root.error)); return; }
    if (!root.folders.length) { container.append(el("p", { class: "muted" }, "No experiments yet.")); return; }
    const list = el("ul");
    for (const { name, count } of root.folders) {
      list.append(this.renderFolder(`ns:${name}`, name, "namespace", count, { ns: name }, null));
    }
    container.append(list);
  },

  renderFolder(key, name, kind, count, where, href) {
    const children = el("ul");
    if (this.openNodes.has(key)) this.renderLevel(children, key, where);
    const current = location.hash;
    const title = href ? el("a", { href, class: current === href ? "active" : "", onclick: () => this.toggle(key, true) }, name) : name;
    const label = el("span", {}, title, el("span", { class: "kind" }, kind), el("span", { class: "kind count" }, String(count)));
    const item = el("li", { class: this.openNodes.has(key) ? "open" : "", "data-key": key, "data-count": String(count) });
    const handle = el("span", { class: "node", onclick: (event) => {
      if (event.target.tagName === "A") return;
      this.toggle(key);
      if (this.openNodes.has(key)) this.renderLevel(children, key, where);
      item.classList.toggle("open", this.openNodes.has(key));
    } }, label);
    item.append(handle, children);
    return item;
  },

  // A folder's content: its sub-folders, then its own experiments (a page at a time), or "loading…" meanwhile.
  renderLevel(children, key, where) {
    const level = this.levels.get(key);
    children.replaceChildren();
    if (!level || !level.ready) {
      children.append(el("li", { class: "muted" }, "loading…"));
      this.loadThenRender(key, where);
      return;
    }
    if (level.error) { children.append(el("li", { class: "error" }, level.error)); return; }
    const { ns, ws, dir } = where;
    const wsHref = (w) => `#/ws/${encodeURIComponent(ns)}/${encodeURIComponent(w)}`;
    for (const { name, count } of level.folders) {
      if (ws === undefined) {
        children.append(this.renderFolder(`ws:${ns}/${name}`, name, "workspace", count, { ns, ws: name, dir: "" }, wsHref(name)));
      } else {
        const sub = dir ? `${dir}/${name}` : name;
        children.append(this.renderFolder(`${key}/${name}`, name, "dir", count, { ns, ws, dir: sub },
          `${wsHref(ws)}?dir=${encodeURIComponent(sub)}`));
      }
    }
    const current = location.hash;
    for (const exp of level.experiments) children.append(this.experimentLink(exp, current));
    if (level.total > level.experiments.length) {
      children.append(el("li", {}, el("button", { type: "button", class: "link more", onclick: () => {
        level.pages++;
        this.loadThenRender(key, where, true);
      } }, `${level.total - level.experiments.length} more…`)));
    }
  },

  experimentLink(exp, current, where = "") {
    const href = `#/exp/${exp.id}`;
    return el("li", {}, el("a", { href, class: `exp ${current === href ? "active" : ""}`, title: exp.prefix, "data-experiment": exp.id },
      exp.status === "RUNNING" ? el("span", { class: "pulse", title: "running" }) : null, " ", exp.prefix),
    alertBadges.badge(exp.id), where ? el("span", { class: "kind" }, where) : null);
  },

  // The search box: the server's matches (name, folders, readme), newest query only.
  renderSearch(container) {
    const query = this.query;
    if (this.results && this.results.query === query) {
      const { items } = this.results;
      container.replaceChildren();
      if (!items.length) { container.append(el("p", { class: "muted" }, "No experiment matches.")); return; }
      const current = location.hash;
      const list = el("ul", { class: "search-results" }, ...items.map((e) => this.experimentLink(e, current,
        [e.namespace, e.workspace, e.directory].filter(Boolean).join("/"))));
      container.append(list);
      if (items.length === SEARCH_LIMIT) container.append(el("p", { class: "muted" }, `The first ${SEARCH_LIMIT} matches.`));
      return;
    }
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(async () => {
      try {
        const data = await api.graphql(`query NavSearch($text: String!, $limit: Int) {
          search(text: $text, limit: $limit) { id namespace workspace directory prefix status } }`, { text: query, limit: SEARCH_LIMIT });
        if (this.query !== query) return;  // a newer search is on its way
        this.results = { query, items: data.search };
        this.render();
      } catch (error) {
        if (this.query === query) container.replaceChildren(el("p", { class: "error" }, error.message));
      }
    }, SEARCH_DELAY_MS);
  },
};
