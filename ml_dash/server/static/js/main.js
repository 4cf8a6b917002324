// ml-dash dashboard entry point: a dependency-free single-page app over the server's /graphql and /api/v1 reads.

import { api } from "./api.js";
import { loadPlotly } from "./charts.js";
import { showPartialErrors } from "./dom.js";
import { navigator_ } from "./navigator.js";
import { route } from "./router.js";

// The token outlives the page in this browser's localStorage; a 401 asks for one.
api.configure({ storage: localStorage, askToken: (text) => window.prompt(text), onPartialErrors: showPartialErrors });

document.getElementById("nav-search").addEventListener("input", (event) => {
  navigator_.query = event.target.value.trim();
  navigator_.render();
});
window.addEventListener("hashchange", route);

(async function start() {
  // The navigator's top level and the view's own requests go out together; neither waits for the other or for plotly.
  navigator_.refresh().catch(console.error);
  await route();
  // A page without charts still readies plotly for the next view, once it has rendered.
  loadPlotly().catch(console.error);
  // New experiments appear in the navigator without a reload.
  setInterval(() => navigator_.refresh().catch(console.error), 10000);
})();
