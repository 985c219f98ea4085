// Datasets: drag-and-drop JSONL upload with validation errors by line, the list, and one dataset's
// detected format, columns and a preview of its first rows.

import { api, listAll } from "../api.js";
import { ago, bytes, clear, confirmButton, dateTime, field, h, num, pageHead, table, toast } from "../ui.js";
import { scanJsonl, uploader } from "../upload.js";

const FORMAT_HELP = {
  chat: "chat — {messages: [{role, content}, …]} · trains SFT",
  completion: "completion — {prompt, completion} · trains SFT",
  preference: "preference — {prompt, chosen, rejected} · trains DPO",
  prompt: "prompt — {prompt, …extra columns for the reward} · trains GRPO",
};

export async function renderList(main, { signal, navigate }) {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const name = h("input", { name: "name", placeholder: "from the file name", maxlength: 200 });
  const form = uploader({
    title: "Upload a dataset",
    accept: ".jsonl,.json,application/jsonl,application/x-ndjson,text/plain",
    hint: "JSON Lines: one object per line — chat (messages), completion (prompt/completion), preference (chosen/rejected) or prompt.",
    extraFields: [field("Name", name, "Optional")],
    preScan: scanJsonl,
    submit: (file) => {
      const fd = new FormData();
      fd.append("file", file, file.name);
      if (name.value.trim()) fd.append("name", name.value.trim());
      return api("/v1/datasets", { form: fd, signal });
    },
    done: (ds) => {
      toast(`Uploaded ${ds.name}: ${ds.num_rows} rows, format ${ds.format}`);
      name.value = "";
      navigate(`#/datasets/${ds.id}`);
    },
  });
  main.append(pageHead("Datasets", "Training data for SFT, DPO and GRPO, validated on upload."), form,
    h("section", { class: "panel", "aria-labelledby": "ds-list-title" }, h("h2", { id: "ds-list-title" }, "All datasets"), list));
  const rows = await listAll("/v1/datasets");
  clear(list, table([
    { label: "Name", cell: (d) => h("div", {}, h("a", { href: `#/datasets/${d.id}` }, d.name), h("div", { class: "muted small mono" }, d.id)) },
    { label: "Format", cell: (d) => h("span", { class: "badge info" }, d.format) },
    { label: "Rows", class: "num", cell: (d) => num(d.num_rows) },
    { label: "Size", class: "num", cell: (d) => bytes(d.bytes) },
    { label: "Source", cell: (d) => d.source_type === "upload" ? d.filename || "upload" : `${d.source_type}: ${d.source_uri || d.huggingface_dataset || ""}` },
    { label: "Created", cell: (d) => h("span", { class: "small nowrap", title: d.created_at }, ago(d.created_at)) },
  ], rows, { empty: "No datasets yet. Drop a .jsonl file above.", caption: "Datasets", rowAttrs: (d) => ({ "data-dataset": d.id }) }));
}

export async function renderOne(main, { params: [id], signal, navigate }) {
  const ds = await api(`/v1/datasets/${id}`, { signal });
  const columns = [...new Set((ds.preview || []).flatMap((r) => Object.keys(r)))];
  const del = confirmButton("Delete", "Confirm delete", async () => {
    await api(`/v1/datasets/${ds.id}`, { method: "DELETE", signal });
    toast(`Deleted ${ds.name}`);
    navigate("#/datasets");
  });
  main.append(
    pageHead(ds.name, FORMAT_HELP[ds.format] || ds.format, [
      h("a", { class: "button primary", href: `#/jobs/new?dataset=${ds.id}&method=${{ preference: "dpo", prompt: "grpo" }[ds.format] || "sft"}` }, "Train on this"),
      del], [h("a", { href: "#/datasets" }, "Datasets"), " / ", h("span", { class: "mono" }, ds.id)]),
    h("div", { class: "stats" },
      h("div", { class: "stat", "data-stat": "format" }, h("div", { class: "label" }, "Detected format"), h("div", { class: "value" }, ds.format)),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Rows"), h("div", { class: "value" }, num(ds.num_rows))),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Size"), h("div", { class: "value" }, bytes(ds.bytes))),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Columns"), h("div", { class: "value small" }, (ds.columns || []).join(", ") || "—"))),
    h("section", { class: "panel", "aria-labelledby": "preview-title" },
      h("h2", { id: "preview-title" }, `Preview (first ${(ds.preview || []).length} rows)`),
      table([{ label: "#", cell: (r) => String(r.__n) }, ...columns.map((c) => ({ label: c, cell: (r) => cell(r.row[c]) }))],
        (ds.preview || []).map((row, i) => ({ row, __n: i + 1 })), { empty: "No preview for this dataset.", caption: "Dataset preview" })),
    h("section", { class: "panel" }, h("h2", {}, "Details"), h("dl", { class: "kv" },
      h("dt", {}, "ID"), h("dd", { class: "mono" }, ds.id),
      h("dt", {}, "File"), h("dd", {}, ds.filename || "—"),
      h("dt", {}, "SHA-256"), h("dd", { class: "mono small" }, ds.sha256 || "—"),
      h("dt", {}, "Source"), h("dd", {}, ds.source_type, ds.source_uri ? ` · ${ds.source_uri}` : ""),
      h("dt", {}, "Created"), h("dd", {}, dateTime(ds.created_at)))));
}

function cell(value) {
  if (value === undefined) return h("span", { class: "muted" }, "—");
  if (Array.isArray(value) && value.every((m) => m && typeof m === "object" && "role" in m)) {
    return h("div", { class: "small" }, value.map((m) => h("div", {}, h("strong", {}, `${m.role}: `), String(m.content ?? ""))));
  }
  if (typeof value === "string") return h("div", { class: "small", style: "white-space:pre-wrap" }, value.length > 500 ? `${value.slice(0, 500)}…` : value);
  return h("div", { class: "json-cell" }, JSON.stringify(value, null, 1).slice(0, 600));
}
