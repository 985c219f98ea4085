// Cost and billing: balance, burn rate and runway, spend over time / by GPU / by provider, the
// transactions, and the estimate / compare calculator.

import { api, listAll } from "../api.js";
import { barChart, columnChart } from "../charts.js";
import { clear, dateTime, duration, errorBox, every, field, h, money, num, pageHead, select, stat, table } from "../ui.js";

export async function render(main, { query, signal, navigate }) {
  const days = Number(query.days) || 30;
  const period = select([[7, "Last 7 days"], [30, "Last 30 days"], [90, "Last 90 days"], [365, "Last 365 days"]], days, { name: "days" });
  period.addEventListener("change", () => navigate(`#/billing?days=${period.value}`));
  const stats = h("div", { class: "stats", "aria-live": "polite" });
  const active = h("div");
  const spendCharts = h("div", { class: "charts" });
  const txns = h("div");
  const calc = calculator(signal);
  main.append(
    pageHead("Cost & billing", "What your organization has, burns and spent.", field("Period", period)),
    stats,
    h("section", { class: "panel", "aria-labelledby": "active-title" }, h("h2", { id: "active-title" }, "Running now"), active),
    h("section", { class: "panel", "aria-labelledby": "spend-title" }, h("h2", { id: "spend-title" }, "Spend"), spendCharts),
    h("section", { class: "panel", "aria-labelledby": "calc-title" }, h("h2", { id: "calc-title" }, "Estimate & compare"), calc.el),
    h("section", { class: "panel", "aria-labelledby": "txn-title" }, h("h2", { id: "txn-title" }, "Transactions"), txns));

  async function refreshLive() {
    const [balance, burn, summary] = await Promise.all([api("/v1/billing/balance", { signal }), api("/v1/billing/burn_rate", { signal }),
      api("/v1/cost/summary", { query: { days }, signal })]);
    clear(stats,
      stat("Balance", money(balance.balance_usd), `${balance.organization_name} · ${balance.plan}`, { "data-stat": "balance" }),
      stat("Available", money(balance.available_usd), balance.held_usd ? `${money(balance.held_usd)} held for running work` : "nothing held"),
      stat("Burn rate", `${money(burn.usd_per_hour)}/h`, `${money(burn.usd_per_day)} per day`, { "data-stat": "burn" }),
      stat("Runway", burn.runway_hours == null ? "∞" : duration(burn.runway_hours * 3600),
        burn.runway_hours == null ? "nothing running" : "at the current burn rate", { "data-stat": "runway" }),
      stat(`Spend, ${days} d`, money(summary.total_cost_usd),
        `training ${money(summary.training_cost_usd)} · serving ${money(summary.serving_cost_usd)}`, { "data-stat": "spend" }),
      stat("GPU hours", num(summary.gpu_hours, 4), `${summary.job_count} jobs · ${summary.deployment_count} deployments · ${num(summary.tokens_served)} tokens served`));
    clear(active, table([
      { label: "What", cell: (i) => h("a", { href: i.kind === "deployment" ? `#/deployments/${i.id}` : `#/jobs/${i.id}` }, i.id) },
      { label: "Kind", cell: (i) => i.kind === "deployment" ? "deployment" : "training job" },
      { label: "Status", cell: (i) => i.status },
      { label: "GPU", cell: (i) => i.gpu ? `${i.gpu.type ?? i.gpu} × ${i.gpu.count ?? 1}` : "—" },
      { label: "Provider", cell: (i) => i.provider || "—" },
      { label: "Rate", class: "num", cell: (i) => `${money(i.usd_per_hour)}/h` },
      { label: "Since", cell: (i) => dateTime(i.since) },
    ], burn.items, { empty: "Nothing is running, so nothing is burning credit.", caption: "Running work" }));
  }

  async function refreshSpend() {
    const [byGpu, byProvider, all] = await Promise.all([
      api("/v1/cost/by_gpu", { query: { days }, signal }), api("/v1/cost/by_provider", { query: { days }, signal }),
      listAll("/v1/billing/transactions", {}, 20)]);
    const buckets = dailySpend(all, Math.min(days, 90));
    clear(spendCharts,
      columnChart({ key: "spend_over_time", title: `Spend per day (last ${Math.min(days, 90)} days)`, items: buckets, format: (v) => money(v),
        empty: "No charges in this period" }),
      barChart({ key: "spend_by_gpu", title: "Spend by GPU", items: byGpu.data.map((d) => ({ label: d.gpu_type, value: d.cost_usd })), format: (v) => money(v),
        empty: "No spend in this period" }),
      barChart({ key: "spend_by_provider", title: "Spend by provider", items: byProvider.data.map((d) => ({ label: d.provider, value: d.cost_usd })),
        format: (v) => money(v), empty: "No spend in this period" }));
    clear(txns, transactionTable(all));
  }

  try {
    await Promise.all([refreshLive(), refreshSpend()]);
  } catch (err) {
    main.prepend(errorBox(err));
  }
  const stopLive = every(5000, refreshLive);
  const stopSpend = every(30000, refreshSpend);
  signal.addEventListener("abort", () => { stopLive(); stopSpend(); });
}

function dailySpend(transactions, days) {
  const out = [];
  const index = {};
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(today);
    d.setDate(d.getDate() - i);
    const key = d.toDateString();
    index[key] = out.length;
    out.push({ label: d.toLocaleDateString(undefined, { month: "short", day: "numeric" }), value: 0 });
  }
  for (const t of transactions) {
    if (t.amount_usd >= 0 || t.type !== "charge") continue;
    const d = new Date(t.created_at);
    d.setHours(0, 0, 0, 0);
    const i = index[d.toDateString()];
    if (i !== undefined) out[i].value += -t.amount_usd;
  }
  return out;
}

function transactionTable(rows) {
  const PAGE = 25;
  const holder = h("div");
  let shown = PAGE;
  const draw = () => {
    const more = rows.length > shown ? h("button", { type: "button", onclick: () => { shown += PAGE; draw(); } }, `Show more (${rows.length - shown} left)`) : null;
    clear(holder, table([
      { label: "When", cell: (t) => h("span", { class: "small nowrap" }, dateTime(t.created_at)) },
      { label: "Type", cell: (t) => h("span", { class: `badge ${t.amount_usd >= 0 ? "ok" : ""}` }, t.type) },
      { label: "Description", cell: (t) => h("span", { class: "small" }, t.description || "—") },
      { label: "Reference", cell: (t) => ref(t.reference) },
      { label: "Amount", class: "num", cell: (t) => h("span", { style: t.amount_usd >= 0 ? "color:var(--ok)" : "" }, money(t.amount_usd)) },
    ], rows.slice(0, shown), { empty: "No transactions yet.", caption: "Transactions" }), more);
  };
  draw();
  return holder;
}

function ref(id) {
  if (!id) return "—";
  if (id.startsWith("job_")) return h("a", { href: `#/jobs/${id}`, class: "mono small" }, id);
  if (id.startsWith("dep_")) return h("a", { href: `#/deployments/${id}`, class: "mono small" }, id);
  return h("span", { class: "mono small" }, id);
}

function calculator(signal) {
  const gpuType = h("select", { name: "calc_gpu_type" });
  const count = h("input", { name: "calc_gpu_count", type: "number", min: 1, max: 1024, value: "1" });
  const minutes = h("input", { name: "calc_minutes", type: "number", min: 0, step: "any", value: "60" });
  const provider = h("select", { name: "calc_provider" });
  const jobsPerDay = h("input", { name: "calc_jobs_per_day", type: "number", min: 0, step: "any", value: "1" });
  const result = h("div", { "aria-live": "polite", "data-testid": "calc-result" });
  let rates = null;

  async function load() {
    rates = await api("/v1/cost/rates", { signal });
    const local = rates.rates.find((r) => r.provider === "local")?.gpu_type;
    clear(gpuType, rates.gpu_types.map((t) => h("option", { value: t, selected: t === (local && local !== "cpu" ? local : "H100-80GB") }, t)));
    syncProviders();
    await run();
  }
  function syncProviders() {
    const offers = [...new Set(rates.rates.filter((r) => r.gpu_type === gpuType.value).map((r) => r.provider))];
    clear(provider, h("option", { value: "" }, "Default"), offers.map((p) => h("option", { value: p }, p)));
  }
  let seq = 0;
  async function run() {
    const mine = ++seq;
    const q = { gpu_type: gpuType.value, gpu_count: count.value || 1, duration_minutes: minutes.value || 0 };
    try {
      const [est, cmp, proj] = await Promise.all([
        api("/v1/cost/estimate", { query: { ...q, provider: provider.value || undefined }, signal }),
        api("/v1/cost/compare", { query: q, signal }),
        api("/v1/cost/monthly_projection", { query: { gpu_type: q.gpu_type, gpu_count: q.gpu_count, avg_duration_minutes: q.duration_minutes,
          jobs_per_day: jobsPerDay.value || 0, provider: provider.value || undefined }, signal })]);
      if (mine !== seq) return;
      clear(result,
        h("div", { class: "stats" },
          stat("Estimate", money(est.cost_usd), `${est.provider} · ${est.gpu_type} × ${est.gpu_count} · ${num(est.duration_minutes)} min`, { "data-stat": "estimate" }),
          stat("Spot", est.spot_cost_usd != null ? money(est.spot_cost_usd) : "—", "interruptible capacity"),
          stat("Cheapest", money(cmp.cheapest.cost_usd), cmp.cheapest.provider),
          stat("Monthly at this cadence", money(proj.total_monthly_usd), `${num(proj.total_jobs)} jobs + ${money(proj.keep_warm_monthly_usd)} serving`)),
        h("div", { style: "height:.75rem" }),
        table([
          { label: "Provider", cell: (e) => e.provider },
          { label: "Per GPU-hour", class: "num", cell: (e) => money(e.usd_per_gpu_hour) },
          { label: "Total", class: "num", cell: (e) => money(e.cost_usd) },
          { label: "Spot", class: "num", cell: (e) => e.spot_cost_usd != null ? money(e.spot_cost_usd) : "—" },
          { label: "Saves vs. most expensive", class: "num", cell: (e) => e.savings_usd ? `${money(e.savings_usd)} (${e.savings_pct}%)` : "—" },
        ], cmp.providers, { caption: `Providers offering ${cmp.gpu_type}` }));
    } catch (err) {
      if (mine === seq && !signal.aborted) clear(result, errorBox(err));
    }
  }
  let timer = null;
  const form = h("form", { "aria-label": "Cost calculator", onsubmit: (ev) => { ev.preventDefault(); run(); } },
    h("div", { class: "form-grid" }, field("GPU type", gpuType), field("GPU count", count), field("Duration (minutes)", minutes),
      field("Provider", provider), field("Jobs per day (projection)", jobsPerDay)));
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 300); });
  gpuType.addEventListener("change", () => { syncProviders(); run(); });
  load().catch((err) => clear(result, errorBox(err)));
  return { el: h("div", {}, form, h("div", { style: "height:.75rem" }), result) };
}
