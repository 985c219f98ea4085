// Training jobs: a list with status and method filters that refreshes while it is on screen.

import { liveList, pageSizeFrom } from "../paging.js";
import { ago, badge, field, h, money, num, pageHead, progress, select, table } from "../ui.js";

export const JOB_STATUSES = ["queued", "provisioning", "running", "completed", "failed", "cancelled"];
export const METHODS = ["sft", "dpo", "grpo"];
const REFRESH_MS = 3000;
const PAGE = 20; // rows per "Load more"; `#/jobs?limit=N` sets another page size

export async function renderList(main, { query, signal, navigate }) {
  const status = select([["", "All statuses"], ...JOB_STATUSES], query.status, { name: "status" });
  const method = select([["", "All methods"], ...METHODS.map((m) => [m, m.toUpperCase()])], query.method, { name: "method" });
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const pageSize = pageSizeFrom(query, PAGE);

  const onFilter = () => {
    const qs = new URLSearchParams();
    if (status.value) qs.set("status", status.value);
    if (method.value) qs.set("method", method.value);
    if (query.limit) qs.set("limit", query.limit);
    navigate(`#/jobs${qs.toString() ? `?${qs}` : ""}`);
  };
  status.addEventListener("change", onFilter);
  method.addEventListener("change", onFilter);

  main.append(
    pageHead("Training jobs", "SFT, DPO and GRPO runs on this cluster. Statuses update live.",
      h("a", { class: "button primary", href: "#/jobs/new" }, "New training job")),
    h("section", { class: "panel", "aria-label": "Training jobs" },
      h("div", { class: "filters", role: "search" }, field("Status", status), field("Method", method)),
      body, h("div", { class: "row", style: "margin-top:.75rem" }, more)));

  await liveList({ path: "/v1/training_jobs", filters: { status: query.status, method: query.method }, pageSize,
    body, more, signal, refreshMs: REFRESH_MS,
    render: (rows) => jobTable(rows, query.status || query.method ? "No jobs match these filters." : null) });
}

function jobTable(rows, emptyText) {
  return table([
    { label: "Job", cell: (j) => h("div", {}, h("a", { href: `#/jobs/${j.id}` }, j.output_name || j.id),
      h("div", { class: "muted small mono" }, j.id)) },
    { label: "Method", cell: (j) => j.method.toUpperCase() },
    { label: "Base model", cell: (j) => h("span", { class: "small" }, j.base_model) },
    { label: "Status", cell: (j) => badge(j.status) },
    { label: "Progress", cell: (j) => h("div", { class: "small" },
      j.total_steps ? `${j.current_step}/${j.total_steps}` : j.current_step ? `step ${j.current_step}` : "—",
      j.total_steps ? progress(j.current_step, j.total_steps) : null) },
    { label: "Loss", class: "num", cell: (j) => num(j.current_loss) },
    { label: "Cost", class: "num", cell: (j) => money(j.cost_usd) },
    { label: "Created", cell: (j) => h("span", { class: "nowrap small", title: j.created_at }, ago(j.created_at)) },
  ], rows, { empty: emptyText || "No training jobs yet. Start one with “New training job”.", caption: "Training jobs",
    rowAttrs: (j) => ({ "data-job": j.id }) });
}
