// The navigator on the left: the namespace → workspace → directory → experiment tree, its search and open folders.

import { alertBadges } from "./alert_badges.js";
import { api } from "./api.js";
import { el } from "./dom.js";

export const navigator_ = {
  experiments: [],
  loaded: false,
  openNodes: new Set(JSON.parse(sessionStorage.getItem("mlDashOpen") || "[]")),
  query: "",

  async refresh() {
    const [data] = await Promise.all([
      api.graphql(`{ experiments(limit: 10000) { id namespace workspace directory prefix readme status } }`),
      alertBadges.refresh(),  // the open alerts' badges beside the runs
    ]);
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
        exp.status === "RUNNING" ? el("span", { class: "pulse", title: "running" }) : null, " ", exp.prefix), alertBadges.badge(exp.id)));
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
