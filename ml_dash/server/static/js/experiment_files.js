// The experiment page's Files section: every uploaded file with its size, a download link (through the token when
// the server needs one) and an inline preview of images, JSON and text.

import { api } from "./api.js";
import { el } from "./dom.js";
import { formatBytes } from "./lib/format.js";
import { naturalCompare } from "./lib/rows.js";

export async function loadFiles(section, experimentId) {
  const result = await api.graphql(`query Files($id: ID!) { experiment(id: $id) { files { path size } } }`, { id: experimentId });
  const files = [...result.experiment.files].sort((a, b) => naturalCompare(a.path, b.path));  // epoch_5 before epoch_10
  const preview = el("div", { class: "preview", id: "file-preview" });
  const rows = files.map((f) => el("tr", { "data-path": f.path },
    el("td", {}, el("code", {}, f.path)), el("td", { class: "muted" }, formatBytes(f.size)),
    el("td", {}, el("a", { href: api.fileUrl(experimentId, f.path), download: f.path.split("/").pop(), onclick: (event) => downloadWithToken(event, experimentId, f.path) }, "download")),
    el("td", {}, previewable(f.path) ? el("button", { onclick: () => previewFile(preview, experimentId, f) }, "preview") : null)));
  section.replaceChildren(el("h2", {}, "Files"), files.length
    ? el("div", { class: "panel" }, el("table", { class: "files" }, rows), preview)
    : el("p", { class: "muted" }, "No files."));
}

async function downloadWithToken(event, experimentId, path) {
  if (!api.token) return;  // a plain link works when the server needs no token
  event.preventDefault();
  const answer = await api.fetch(api.fileUrl(experimentId, path));
  const url = URL.createObjectURL(await answer.blob());
  const link = el("a", { href: url, download: path.split("/").pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const PREVIEW_LIMIT_BYTES = 2 * 1024 * 1024;
const IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp"];
// Only files that can be shown get a preview button; a checkpoint or an archive is a download, not a "binary" notice.
const TEXT_EXTENSIONS = ["json", "jsonl", "txt", "md", "log", "csv", "tsv", "yaml", "yml", "toml", "ini", "cfg", "py", "sh",
  "xml", "html", "js", "ts", "diff", "patch", "out", "err"];

function previewable(path) {
  const extension = path.includes(".") ? path.split(".").pop().toLowerCase() : "";
  return IMAGE_EXTENSIONS.includes(extension) || TEXT_EXTENSIONS.includes(extension);
}

async function previewFile(container, experimentId, file) {
  container.replaceChildren(el("span", { class: "muted" }, `Loading ${file.path}…`));
  const extension = file.path.split(".").pop().toLowerCase();
  const answer = await api.fetch(api.fileUrl(experimentId, file.path));
  if (!answer.ok) { container.replaceChildren(el("span", { class: "error" }, `HTTP ${answer.status}`)); return; }
  const title = el("h3", {}, file.path);
  if (IMAGE_EXTENSIONS.includes(extension)) {
    let blob = await answer.blob();
    if (extension === "svg") blob = new Blob([blob], { type: "image/svg+xml" });  // served as octet-stream otherwise
    container.replaceChildren(title, el("img", { src: URL.createObjectURL(blob), alt: file.path }));
    return;
  }
  if (file.size > PREVIEW_LIMIT_BYTES) { container.replaceChildren(title, el("span", { class: "muted" }, "Too large to preview; download it instead.")); return; }
  const text = await answer.text();
  if (extension === "json") {
    try { container.replaceChildren(title, el("pre", { class: "json" }, JSON.stringify(JSON.parse(text), null, 2))); return; } catch { /* show as text */ }
  }
  // Anything else is shown as text when it decodes as text; binary files would only show noise.
  if (/[\u0000-\u0008\u000e-\u001f]/.test(text.slice(0, 4096))) container.replaceChildren(title, el("span", { class: "muted" }, "Binary file; download it instead."));
  else container.replaceChildren(title, el("pre", {}, text));
}
