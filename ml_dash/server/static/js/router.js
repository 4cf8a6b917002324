// Hash routing (picks the view for location.hash, tears down the previous one) and the home view.
// Routes (hash based so a test or a bookmark can open any view directly):
//   #/                              overview of namespaces and workspaces
//   #/ws/<ns>/<ws>?dir=<d>&filter=&view=charts|parallel  runs table of a workspace (optionally one directory
//                                   subtree), with its charts or parallel coordinates above it
//   #/exp/<id>                      experiment page (readme, parameters, charts, logs, files; live while RUNNING)
//   #/compare?ids=a,b&metric=<m>&metric=<n>    several experiments overlaid, one chart per chosen metric
//   #/alerts?ns=<ns>&exp=<id>       alert rules and recent alerts (alerts_page.js)

import { alertsView } from "./alerts_page.js";
import { compareView } from "./compare.js";
import { experimentView } from "./experiment_page.js";
import { navigator_ } from "./navigator.js";
import { el, setBreadcrumbs, setLive, statusBadge } from "./dom.js";
import { workspaceView } from "./workspace_view.js";

let currentView = null;  // {destroy()} of the view on screen, so timers and charts stop when we navigate away

function parseHash() {
  const [path, queryString] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(queryString || "") };
}

export async function route() {
  if (currentView && currentView.destroy) currentView.destroy();
  currentView = null;
  setLive(false);
  setBreadcrumbs();  // each view sets its own trail; one that fails to load must not keep the previous one
  const main = document.getElementById("main");
  main.replaceChildren();
  const { parts, query } = parseHash();
  try {
    if (parts[0] === "exp" && parts[1]) currentView = await experimentView(main, parts[1]);
    else if (parts[0] === "ws" && parts.length >= 3) currentView = await workspaceView(main, parts[1], parts[2], query.get("dir") || "", query.get("filter") || "", query.get("view") || "runs");
    else if (parts[0] === "alerts") currentView = await alertsView(main, query);
    else if (parts[0] === "compare") currentView = await compareView(main, (query.get("ids") || "").split(",").filter(Boolean), query.getAll("metric"));
    else currentView = await homeView(main);
  } catch (error) {
    main.append(el("p", { class: "error" }, `Could not load this view: ${error.message}`));
    console.error(error);
  }
  navigator_.render();
}

async function homeView(main) {
  setBreadcrumbs();
  main.append(el("h1", {}, "Workspaces"));
  // Counted by the server (the navigator's tree reads), never by listing every experiment here.
  const groups = new Map((await navigator_.workspaces()).map((g) => [`${g.namespace}\u0000${g.workspace}`, g]));
  if (!groups.size) main.append(el("p", { class: "muted" }, "No experiments yet. Point a client at this server with Experiment(..., remote=URL)."));
  const table = el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "namespace"), el("th", {}, "workspace"), el("th", {}, "experiments"), el("th", {}, "running"))));
  const body = el("tbody");
  for (const g of [...groups.values()].sort((a, b) => (a.namespace + a.workspace).localeCompare(b.namespace + b.workspace))) {
    body.append(el("tr", {}, el("td", {}, g.namespace),
      el("td", {}, el("a", { href: `#/ws/${encodeURIComponent(g.namespace)}/${encodeURIComponent(g.workspace)}` }, g.workspace)),
      el("td", { class: "num" }, g.total), el("td", { class: "num" }, g.running ? statusBadge("RUNNING") : "0")));
  }
  table.append(body);
  if (groups.size) main.append(el("div", { class: "table-wrap" }, table));
  return null;
}
