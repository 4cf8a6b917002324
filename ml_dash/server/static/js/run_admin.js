// The experiment page's admin strip: tags (add, remove), notes (edit, save), soft delete and restore, each a GraphQL
// mutation (docs/query.md). Delete asks for a confirmation first; a deleted experiment says so and offers restore.

import { api } from "./api.js";
import { el } from "./dom.js";

const FIELDS = "id tags notes deletedAt";

export async function renderRunAdmin(section, experimentId, confirmDelete = (text) => window.confirm(text)) {
  const read = await api.graphql(`query Admin($id: ID!) { experiment(id: $id) { ${FIELDS} } }`, { id: experimentId });
  let exp = read.experiment;
  if (!exp) return;
  const status = el("span", { class: "admin-status muted", role: "status" });

  async function mutate(field, extra = "", variables = {}) {
    status.textContent = "saving…";
    try {
      const declared = Object.keys(variables).map((name) => `, $${name}: ${name === "tags" ? "[String!]!" : "String"}`).join("");
      const data = await api.graphql(`mutation Admin($id: ID!${declared}) { ${field}(id: $id${extra}) { ${FIELDS} } }`,
        { id: experimentId, ...variables });
      if (data[field]) exp = data[field];
      status.textContent = data.errors ? data.errors.join("; ") : "saved";
    } catch (error) {
      status.textContent = `not saved: ${error.message}`;
    }
    draw();
  }

  function draw() {
    const tagInput = el("input", { type: "text", id: "tag-input", placeholder: "add a tag…", maxlength: 256 });
    const addTag = () => {
      const tag = tagInput.value.trim();
      if (tag) mutate("addTags", ", tags: $tags", { tags: [tag] });
    };
    tagInput.addEventListener("keydown", (event) => { if (event.key === "Enter") addTag(); });
    const tags = el("div", { class: "tags", id: "tags" },
      exp.tags.map((tag) => el("span", { class: "tag", "data-tag": tag }, tag,
        el("button", { type: "button", class: "tag-remove", title: `remove tag ${tag}`,
          onclick: () => mutate("removeTags", ", tags: $tags", { tags: [tag] }) }, "×"))),
      tagInput, el("button", { type: "button", id: "tag-add", onclick: addTag }, "Add tag"));

    const notes = el("textarea", { id: "notes-input", rows: 3, placeholder: "notes about this experiment…" });
    notes.value = exp.notes || "";
    const saveNotes = el("button", { type: "button", id: "notes-save",
      onclick: () => mutate("setNotes", ", notes: $notes", { notes: notes.value || null }) }, "Save notes");

    const lifecycle = exp.deletedAt
      ? el("div", { class: "notice warning", id: "deleted-notice" },
        `Deleted on ${new Date(exp.deletedAt * 1000).toLocaleString()}: hidden from lists until restored. `,
        el("button", { type: "button", id: "restore", onclick: () => mutate("restoreExperiment") }, "Restore"))
      : el("button", { type: "button", id: "delete", class: "danger", onclick: () => {
        if (confirmDelete("Delete this experiment? It is hidden from lists (its data stays) until restored.")) {
          mutate("deleteExperiment");
        }
      } }, "Delete…");

    section.replaceChildren(el("h2", {}, "Tags and notes"),
      el("div", { class: "panel" }, tags, el("div", { class: "notes" }, notes, saveNotes), lifecycle, status));
  }

  draw();
}
