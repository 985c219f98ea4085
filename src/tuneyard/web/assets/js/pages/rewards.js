// Reward functions: drag-and-drop upload of a Python file (checked by the server), the list, and one
// function's source with highlighting.

import { api, listAll } from "../api.js";
import { highlightPython } from "../highlight.js";
import { ago, bytes, clear, confirmButton, dateTime, field, h, pageHead, select, table, toast } from "../ui.js";
import { uploader } from "../upload.js";

const FORMAT_HINT = {
  trl: "def reward(prompts, completions, **kwargs) -> list[float]",
  miles: "async def reward(args, sample, **kwargs) -> float",
};

export async function renderList(main, { signal, navigate }) {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const name = h("input", { name: "name", placeholder: "from the file name", maxlength: 200 });
  const format = select([["trl", "trl — TRL reward function"], ["miles", "miles — async per sample"]], "trl", { name: "format" });
  const signature = h("code", {}, FORMAT_HINT.trl);
  format.addEventListener("change", () => { signature.textContent = FORMAT_HINT[format.value]; });
  const form = uploader({
    title: "Upload a reward function",
    accept: ".py,text/x-python,text/plain",
    hint: "A Python file. It runs only inside the training runner, with a timeout per call.",
    extraFields: [field("Name", name, "Optional"), field("Format", format, signature)],
    submit: (file) => {
      const fd = new FormData();
      fd.append("file", file, file.name);
      fd.append("format", format.value);
      if (name.value.trim()) fd.append("name", name.value.trim());
      return api("/v1/reward_functions", { form: fd, signal });
    },
    done: (rf) => {
      toast(`Uploaded ${rf.name} (entrypoint ${rf.entrypoint})`);
      navigate(`#/rewards/${rf.id}`);
    },
  });
  main.append(pageHead("Reward functions", "Python rewards for GRPO, checked on upload."), form,
    h("section", { class: "panel", "aria-labelledby": "rf-list-title" }, h("h2", { id: "rf-list-title" }, "All reward functions"), list));
  const rows = await listAll("/v1/reward_functions");
  clear(list, table([
    { label: "Name", cell: (r) => h("div", {}, h("a", { href: `#/rewards/${r.id}` }, r.name), h("div", { class: "muted small mono" }, r.id)) },
    { label: "Format", cell: (r) => h("span", { class: "badge info" }, r.format) },
    { label: "Entrypoint", cell: (r) => h("code", {}, r.entrypoint) },
    { label: "Size", class: "num", cell: (r) => bytes(r.bytes) },
    { label: "Created", cell: (r) => h("span", { class: "small nowrap", title: r.created_at }, ago(r.created_at)) },
  ], rows, { empty: "No reward functions yet. Drop a .py file above.", caption: "Reward functions" }));
}

export async function renderOne(main, { params: [id], signal, navigate }) {
  const rf = await api(`/v1/reward_functions/${id}`, { signal });
  const del = confirmButton("Delete", "Confirm delete", async () => {
    await api(`/v1/reward_functions/${rf.id}`, { method: "DELETE", signal });
    toast(`Deleted ${rf.name}`);
    navigate("#/rewards");
  });
  main.append(
    pageHead(rf.name, `${rf.format} reward · entrypoint ${rf.entrypoint}`, [del],
      [h("a", { href: "#/rewards" }, "Reward functions"), " / ", h("span", { class: "mono" }, rf.id)]),
    h("section", { class: "panel", "aria-labelledby": "src-title" },
      h("h2", { id: "src-title" }, rf.filename || "Source"), highlightPython(rf.source || "", `Source of ${rf.name}`)),
    h("section", { class: "panel" }, h("h2", {}, "Details"), h("dl", { class: "kv" },
      h("dt", {}, "ID"), h("dd", { class: "mono" }, rf.id),
      h("dt", {}, "Format"), h("dd", {}, rf.format),
      h("dt", {}, "Entrypoint"), h("dd", { class: "mono" }, rf.entrypoint),
      h("dt", {}, "Size"), h("dd", {}, bytes(rf.bytes)),
      h("dt", {}, "SHA-256"), h("dd", { class: "mono small" }, rf.sha256),
      h("dt", {}, "Created"), h("dd", {}, dateTime(rf.created_at)))));
}
