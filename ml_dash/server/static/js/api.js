// Server access: fetch with the optional API token, GraphQL queries, REST reads and file URLs.

import { el } from "./util.js";

// One notice at the top of the view lists the fields the server could not answer; it goes with the view.
function showPartialErrors(messages) {
  const main = document.getElementById("main");
  if (!main) return;
  let notice = document.getElementById("partial-errors");
  if (!notice || !main.contains(notice)) {
    notice = el("div", { id: "partial-errors", class: "notice warning", role: "status" });
    main.prepend(notice);
  }
  const shown = new Set(notice.dataset.messages ? JSON.parse(notice.dataset.messages) : []);
  for (const m of messages) shown.add(m);
  notice.dataset.messages = JSON.stringify([...shown]);
  notice.replaceChildren(el("b", {}, "Some fields could not be loaded and are left empty: "),
    el("span", { class: "messages" }, [...shown].slice(0, 5).join("; ")), shown.size > 5 ? ` (and ${shown.size - 5} more)` : "");
}

export const api = {
  token: localStorage.getItem("mlDashToken") || "",

  headers(extra = {}) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
  },

  async fetch(url, options = {}) {
    const answer = await fetch(url, { ...options, headers: this.headers(options.headers) });
    if (answer.status === 401) {
      // The server was started with tokens: ask once, keep it for this browser, retry.
      const token = prompt("This ml-dash server needs an API token:");
      if (token) {
        this.token = token.trim();
        localStorage.setItem("mlDashToken", this.token);
        return this.fetch(url, options);
      }
    }
    return answer;
  },

  async graphql(query, variables = {}) {
    const answer = await this.fetch("/graphql", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query, variables }),
    });
    const body = await answer.json();
    const messages = (body.errors || []).map((e) => (e.path ? `${e.path.join(".")}: ${e.message}` : e.message));
    // A field that failed comes back null next to the others (partial data): show what did load and say what did
    // not. Only an answer without data (a refused query, a 4xx/5xx) is a failure of the whole view.
    if (!body.data) throw new Error(messages.join("; ") || body.error || `HTTP ${answer.status}`);
    if (messages.length) {
      Object.defineProperty(body.data, "errors", { value: messages, enumerable: false });
      showPartialErrors(messages);
    }
    return body.data;
  },

  async rest(path) {
    const answer = await this.fetch(`/api/v1${path}`);
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || `HTTP ${answer.status}`);
    return body;
  },

  fileUrl(experimentId, path) {
    return `/api/v1/experiments/${encodeURIComponent(experimentId)}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
  },
};
