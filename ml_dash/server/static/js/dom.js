// The DOM helpers every view shares: the el() and svg() builders, status badges, the top bar's breadcrumbs and live
// indicator, and the notice of fields the server could not answer. The pure helpers live in lib/.

export const LIVE_POLL_MS = 1500;
// A page with nothing RUNNING still polls (one cheap read), so a run started after it was opened shows up.
export const IDLE_POLL_MS = 3000;

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

export function statusBadge(status) {
  const s = status || "none";
  return el("span", { class: `status status-${s}`, "data-status": s },
    s === "RUNNING" ? el("span", { class: "pulse" }) : null, status || "—");
}

export function setBreadcrumbs(...parts) {
  const nav = document.getElementById("breadcrumbs");
  nav.replaceChildren();
  parts.forEach(([text, href], i) => {
    if (i) nav.append(el("span", { class: "sep" }, "/"));
    nav.append(href ? el("a", { href }, text) : el("span", {}, text));
  });
}

export function setLive(on) {
  document.getElementById("live-indicator").hidden = !on;
}

// One notice at the top of the view lists the fields the server could not answer; it goes with the view.
export function showPartialErrors(messages) {
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
