// Server access: fetch with the optional API token, GraphQL queries, REST reads and file URLs.

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
    if (body.errors && body.errors.length) throw new Error(body.errors.map((e) => e.message).join("; "));
    if (!answer.ok) throw new Error(body.error || `HTTP ${answer.status}`);
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
