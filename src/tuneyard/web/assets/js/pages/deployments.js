// Deployments: create one (a base model or a completed fine-tune) and the list with live status and
// "Load more".

import { api } from "../api.js";
import { liveList, pageSizeFrom } from "../paging.js";
import { ago, badge, clear, errorBox, field, h, money, num, pageHead, select, table } from "../ui.js";

const PAGE = 20; // rows per "Load more"; `#/deployments?limit=N` sets another page size

export const DEP_STATUSES = ["queued", "provisioning", "serving", "unhealthy", "stopped", "failed"];

export async function renderList(main, { query, signal, navigate }) {
  const [models, rates] = await Promise.all([api("/v1/models", { signal }), api("/v1/cost/rates", { signal })]);
  const localTypes = [...new Set(rates.rates.filter((r) => r.provider === "local").map((r) => r.gpu_type))];
  const gpuTypes = localTypes.length ? localTypes : rates.gpu_types;
  const options = models.data.filter((m) => m.servable).map((m) => m.type === "fine_tune"
    ? [`job:${m.job_id}`, `${m.id} — fine-tune of ${m.base_model} (${m.job_id})`]
    : [`hf:${m.id}`, `${m.id} — base model`]);
  const model = select(options, query.model ? `job:${query.model}` : options.find(([v]) => v.startsWith("job:"))?.[0], { name: "model" });
  const name = h("input", { name: "name", placeholder: "my-endpoint", maxlength: 200 });
  const gpuType = select(gpuTypes, gpuTypes[0], { name: "gpu_type" });
  const engine = select([["auto", "auto"], ["transformers", "transformers"], ["vllm", "vLLM (GPU)"]], "auto", { name: "engine" });
  const batch = h("input", { name: "max_batch_size", type: "number", min: 1, max: 256, placeholder: "engine default" });
  const status = h("div");
  const submit = h("button", { type: "submit", class: "primary" }, "Deploy");
  const form = h("form", { class: "panel", "aria-labelledby": "new-dep-title" },
    h("h2", { id: "new-dep-title" }, "New deployment"),
    h("div", { class: "form-grid" }, field("Model", model), field("Name", name, "Optional; also accepted as the model name in requests"),
      field("GPU type", gpuType), field("Engine", engine), field("Max batch size", batch)),
    h("div", { style: "height:.75rem" }), status, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(status);
    submit.disabled = true;
    const [kind, id] = [model.value.slice(0, model.value.indexOf(":")), model.value.slice(model.value.indexOf(":") + 1)];
    try {
      const dep = await api("/v1/deployments", { signal, body: {
        model: id, source: kind === "job" ? "training_job" : "huggingface", name: name.value.trim() || undefined,
        gpu: { type: gpuType.value, count: 1 }, engine: engine.value,
        max_batch_size: batch.value ? parseInt(batch.value, 10) : undefined } });
      navigate(`#/deployments/${dep.id}`);
    } catch (err) {
      submit.disabled = false;
      clear(status, errorBox(err));
    }
  });

  const filter = select([["", "All statuses"], ...DEP_STATUSES], query.status, { name: "status" });
  filter.addEventListener("change", () => {
    const qs = new URLSearchParams();
    if (filter.value) qs.set("status", filter.value);
    if (query.limit) qs.set("limit", query.limit);
    navigate(`#/deployments${qs.toString() ? `?${qs}` : ""}`);
  });
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const more = h("button", { type: "button", hidden: true }, "Load more");
  main.append(pageHead("Deployments", "OpenAI-compatible endpoints for base models and fine-tunes."), form,
    h("section", { class: "panel", "aria-labelledby": "dep-list-title" }, h("h2", { id: "dep-list-title" }, "All deployments"),
      h("div", { class: "filters", role: "search" }, field("Status", filter)), list,
      h("div", { class: "row", style: "margin-top:.75rem" }, more)));

  await liveList({ path: "/v1/deployments", filters: { status: query.status }, pageSize: pageSizeFrom(query, PAGE),
    body: list, more, signal, render: (rows) => table([
      { label: "Deployment", cell: (d) => h("div", {}, h("a", { href: `#/deployments/${d.id}` }, d.name || d.id), h("div", { class: "muted small mono" }, d.id)) },
      { label: "Model", cell: (d) => h("div", { class: "small" }, d.model, d.adapter ? h("div", { class: "muted" }, `LoRA on ${d.base_model}`) : null) },
      { label: "Status", cell: (d) => badge(d.status) },
      { label: "GPU", cell: (d) => `${d.gpu.type} × ${d.gpu.count}` },
      { label: "Requests", class: "num", cell: (d) => num(d.total_requests) },
      { label: "Cost", class: "num", cell: (d) => money(d.total_cost_usd) },
      { label: "Created", cell: (d) => h("span", { class: "small nowrap", title: d.created_at }, ago(d.created_at)) },
    ], rows, { empty: "No deployments yet.", caption: "Deployments", rowAttrs: (d) => ({ "data-deployment": d.id }) }) });
}
