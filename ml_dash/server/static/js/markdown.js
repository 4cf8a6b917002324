// Readmes: the server's CommonMark HTML (readmeHtml, raw HTML off) copied into the page through an allow-list.

import { el } from "./dom.js";

// Elements markdown-it produces; anything else keeps only its text. script/style/iframe... lose their text too.
const TAGS = new Set(["h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "ul", "ol", "li", "blockquote", "pre", "code",
  "em", "strong", "del", "s", "a", "img", "table", "thead", "tbody", "tr", "th", "td"]);
const DROP = new Set(["script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math"]);
const ATTRIBUTES = { a: ["href", "title"], img: ["src", "alt", "title"], ol: ["start"], code: ["class"], th: ["style"], td: ["style"] };
const SAFE_URL = /^(https?:|mailto:|#|\/(?!\/)|\.{0,2}\/|[^:/?#]*([/?#]|$))/i;
const SAFE_IMAGE = /^(https?:|data:image\/(png|gif|jpeg|webp);|\/(?!\/)|\.{0,2}\/|[^:/?#]*([/?#]|$))/i;

function allowed(tag, name, value) {
  if (name === "href") return SAFE_URL.test(value.trim());
  if (name === "src") return SAFE_IMAGE.test(value.trim());
  if (name === "style") return /^text-align:\s*(left|right|center)$/.test(value);
  if (name === "class") return /^language-[\w+-]+$/.test(value);
  return true;
}

function copyInto(source, target) {
  for (const node of source.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) { target.append(node.textContent); continue; }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = node.tagName.toLowerCase();
    if (DROP.has(tag)) continue;
    if (!TAGS.has(tag)) { copyInto(node, target); continue; }
    const copy = document.createElement(tag);
    for (const name of ATTRIBUTES[tag] || []) {
      const value = node.getAttribute(name);
      if (value !== null && allowed(tag, name, value)) copy.setAttribute(name, value);
    }
    if (tag === "a") { copy.target = "_blank"; copy.rel = "noopener noreferrer"; }
    copyInto(node, copy);
    target.append(copy);
  }
}

// html: the server's rendering; text: the readme itself, shown as typed when there is no rendering.
export function readmeElement(html, text) {
  const container = el("div", { class: "readme" });
  if (typeof html !== "string") { container.append(el("pre", {}, text || "")); return container; }
  // A document of its own: DOMParser runs no script and loads no image while the HTML is only parsed.
  copyInto(new DOMParser().parseFromString(html, "text/html").body, container);
  return container;
}
