// Server access: fetch with the optional API token, GraphQL queries, REST reads and file URLs. Nothing here runs at
// import: main.js hands it the browser's storage, token prompt and partial-error notice (configure), so Node's test
// runner can load it with stand-ins.

const TOKEN_KEY = "mlDashToken";

export function createApi() {
  return {
    token: "",
    storage: null,  // where the token is kept between visits (the browser's localStorage)
    askToken: () => null,  // asks the user for a token after a 401; null: give up
    onPartialErrors: () => {},  // told the messages of the fields an answer left null
    fetchImpl: (url, options) => globalThis.fetch(url, options),

    configure({ storage = this.storage, askToken = this.askToken, onPartialErrors = this.onPartialErrors, fetchImpl = this.fetchImpl } = {}) {
      Object.assign(this, { storage, askToken, onPartialErrors, fetchImpl });
      this.token = (storage && storage.getItem(TOKEN_KEY)) || "";
      return this;
    },

    headers(extra = {}) {
      return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
    },

    async fetch(url, options = {}) {
      const answer = await this.fetchImpl(url, { ...options, headers: this.headers(options.headers) });
      if (answer.status === 401) {
        // The server was started with tokens: ask once, keep it for this browser, retry.
        const token = this.askToken("This ml-dash server needs an API token:");
        if (token) {
          this.token = token.trim();
          if (this.storage) this.storage.setItem(TOKEN_KEY, this.token);
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
        this.onPartialErrors(messages);
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
}

// The page's one client; main.js configures it before the first request.
export const api = createApi();
