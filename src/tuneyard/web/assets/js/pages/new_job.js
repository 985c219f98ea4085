// The new training job form: dataset, method, base model, reward functions, hyperparameters and GPU,
// with the cost estimate (/v1/cost/estimate) and the credit available shown before submitting.

import { api, listAll } from "../api.js";
import { clear, errorBox, field, h, money, num, pageHead, select } from "../ui.js";

// The server's planning figures (services/costs.job_seconds): start-up is added by /v1/cost/estimate.
const STEP_SECONDS = { cpu: 2.0, gpu: 0.5 };
const METHOD_FACTOR = { sft: 1, dpo: 2, grpo: 4 };
const METHOD_FORMATS = { sft: ["chat", "completion"], dpo: ["preference"], grpo: ["prompt"] };
const DEFAULT_BATCH = { sft: 4, dpo: 2, grpo: 4 };

// [name, label, type, placeholder, methods]
const HYPER = [
  ["learning_rate", "Learning rate", "number", "2e-4 (SFT, LoRA)", null],
  ["num_epochs", "Epochs", "number", "1", null],
  ["max_steps", "Max steps", "number", "from epochs", null],
  ["batch_size", "Batch size", "number", "4 SFT · 2 DPO · 4 GRPO", null],
  ["gradient_accumulation_steps", "Gradient accumulation", "number", "1", null],
  ["max_length", "Max sequence length", "number", "512", null],
  ["lora_r", "LoRA rank", "number", "16", null],
  ["checkpoint_every", "Checkpoint every (steps)", "number", "end only", null],
  ["seed", "Seed", "number", "42", null],
  ["beta", "Beta (KL)", "number", "0.1", ["dpo", "grpo"]],
  ["num_generations", "Generations per prompt", "number", "4", ["grpo"]],
  ["max_completion_length", "Max completion tokens", "number", "64", ["grpo"]],
];

export async function render(main, { query, signal, navigate }) {
  const [datasets, models, rewards, rates, balance] = await Promise.all([
    listAll("/v1/datasets"), api("/v1/models", { signal }), listAll("/v1/reward_functions"),
    api("/v1/cost/rates", { signal }), api("/v1/billing/balance", { signal })]);
  const localTypes = [...new Set(rates.rates.filter((r) => r.provider === "local").map((r) => r.gpu_type))];
  const gpuTypes = localTypes.length ? localTypes : rates.gpu_types;

  const form = h("form", { class: "panel", novalidate: true, "aria-label": "New training job" });
  const outputName = h("input", { name: "output_name", placeholder: "my-model", maxlength: 300 });
  const method = select([["sft", "SFT — supervised fine-tuning"], ["dpo", "DPO — preference pairs"], ["grpo", "GRPO — reward functions"]],
    query.method || "sft", { name: "method" });
  const dataset = select([["", datasets.length ? "Choose a dataset…" : "No datasets yet — upload one first"],
    ...datasets.map((d) => [d.id, `${d.name} · ${d.format} · ${d.num_rows} rows`])], query.dataset || "", { name: "dataset_id", required: true });
  const baseModel = select(models.data.filter((m) => m.trainable).map((m) => [m.id, `${m.id} (${m.source})`]), query.model,
    { name: "base_model", required: true });
  const datasetHint = h("span");
  const rewardBoxes = rewards.map((r) => h("input", { type: "checkbox", name: "reward_function_ids", value: r.id, id: `rf-${r.id}` }));
  // Each picked reward may carry a weight (the job's reward is the weighted sum; empty = 1).
  const rewardWeights = rewards.map((r) => h("input", { type: "number", name: "reward_weights", step: "any", placeholder: "1",
    class: "weight", disabled: true, "aria-label": `Weight of ${r.name}` }));
  const rewardSet = h("fieldset", {}, h("legend", {}, "Reward functions"),
    rewards.length
      ? h("div", { class: "grid" }, rewards.map((r, i) => h("div", { class: "row" },
        h("label", { class: "check", for: rewardBoxes[i].id }, rewardBoxes[i],
          h("span", {}, r.name, h("span", { class: "muted small" }, ` ${r.format} · ${r.id}`))),
        h("span", { class: "muted small" }, "×"), rewardWeights[i])))
      : h("p", { class: "muted", style: "margin:0" }, "No reward functions yet. ", h("a", { href: "#/rewards" }, "Upload one"), " for GRPO."));
  const hyperInputs = Object.fromEntries(HYPER.map(([name, , type, placeholder]) =>
    [name, h("input", { name, type, step: "any", min: "0", placeholder, inputmode: "decimal" })]));
  const hyperFields = HYPER.map(([name, label, , , methods]) => {
    const f = field(label, hyperInputs[name]);
    f.dataset.methods = methods ? methods.join(",") : "";
    return f;
  });
  const gpuType = select(gpuTypes, gpuTypes[0], { name: "gpu_type" });
  const gpuCount = h("input", { name: "gpu_count", type: "number", min: "1", step: "1", value: "1" });
  const provider = select([["", "Default"]], "", { name: "provider" });
  const estimateBox = h("div", { "aria-live": "polite", "data-testid": "estimate" }, h("p", { class: "muted" }, "Calculating…"));
  const status = h("div");
  const submit = h("button", { type: "submit", class: "primary" }, "Start training");

  form.append(
    h("div", { class: "form-grid" },
      field("Method", method), field("Dataset", dataset, datasetHint), field("Base model", baseModel),
      field("Output name", outputName, "Name of the fine-tuned model (optional)")),
    h("div", { style: "height:1rem" }), rewardSet,
    h("div", { style: "height:1rem" }),
    h("fieldset", {}, h("legend", {}, "Hyperparameters"),
      h("p", { class: "muted small", style: "margin-top:0" }, "Leave a field empty to use the server's default."),
      h("div", { class: "form-grid" }, hyperFields)),
    h("div", { style: "height:1rem" }),
    h("fieldset", {}, h("legend", {}, "Compute"),
      h("div", { class: "form-grid" }, field("GPU type", gpuType, "Shapes available on this cluster"), field("GPU count", gpuCount),
        field("Provider (for the estimate)", provider))),
    h("div", { style: "height:1rem" }),
    h("section", { class: "panel", "aria-labelledby": "est-title", style: "background:var(--panel-2)" },
      h("h2", { id: "est-title" }, "Cost estimate"), estimateBox),
    h("div", { style: "height:1rem" }), status, h("div", { class: "row" }, submit, h("a", { href: "#/jobs" }, "Cancel")));

  main.append(pageHead("New training job", "Pick data, a method and a base model; the estimate updates as you go.", null,
    [h("a", { href: "#/jobs" }, "Training jobs"), " / new"]), form);

  function hyperparameters() {
    const out = {};
    for (const [name, , , , methods] of HYPER) {
      const raw = hyperInputs[name].value.trim();
      if (!raw || (methods && !methods.includes(method.value))) continue;
      out[name] = /^(max_steps|batch_size|gradient_accumulation_steps|max_length|lora_r|checkpoint_every|seed|num_generations|max_completion_length)$/.test(name)
        ? parseInt(raw, 10) : Number(raw);
    }
    return out;
  }

  function syncMethod() {
    const m = method.value;
    rewardSet.hidden = m !== "grpo";
    rewardBoxes.forEach((b, i) => { rewardWeights[i].disabled = !b.checked; });
    for (const f of hyperFields) f.hidden = Boolean(f.dataset.methods) && !f.dataset.methods.split(",").includes(m);
    if (!dataset.value) {
      const fit = datasets.find((d) => METHOD_FORMATS[m].includes(d.format));
      if (fit) dataset.value = fit.id;
    }
    const ds = datasets.find((d) => d.id === dataset.value);
    datasetHint.textContent = ds && !METHOD_FORMATS[m].includes(ds.format)
      ? `This dataset is '${ds.format}'; ${m.toUpperCase()} expects ${METHOD_FORMATS[m].join(" or ")}.`
      : `${m.toUpperCase()} reads ${METHOD_FORMATS[m].join(" or ")} rows.`;
  }

  function syncProviders() {
    const offers = rates.rates.filter((r) => r.gpu_type === gpuType.value).map((r) => r.provider);
    const keep = provider.value;
    clear(provider, h("option", { value: "" }, "Default"), [...new Set(offers)].map((p) => h("option", { value: p, selected: p === keep }, p)));
  }

  function plannedSteps() {
    const hp = hyperparameters();
    if (hp.max_steps > 0) return hp.max_steps;
    const ds = datasets.find((d) => d.id === dataset.value);
    const rows = ds ? ds.num_rows : 0;
    let perStep = (hp.batch_size || DEFAULT_BATCH[method.value]) * (hp.gradient_accumulation_steps || 1);
    if (method.value === "grpo") perStep = Math.max(1, Math.floor(perStep / (hp.num_generations || 4)));
    return Math.max(1, Math.ceil(((hp.num_epochs ?? 1) * rows) / perStep));
  }

  let seq = 0;
  async function estimate() {
    const mine = ++seq;
    const steps = plannedSteps();
    const stepS = (gpuType.value === "cpu" ? STEP_SECONDS.cpu : STEP_SECONDS.gpu) * METHOD_FACTOR[method.value];
    const minutes = (steps * stepS) / 60;
    try {
      const est = await api("/v1/cost/estimate", { signal, query: { gpu_type: gpuType.value, gpu_count: gpuCount.value || 1,
        duration_minutes: minutes.toFixed(3), provider: provider.value || undefined } });
      if (mine !== seq) return;
      const enough = balance.available_usd >= est.cost_usd;
      clear(estimateBox,
        h("div", { class: "stats" },
          h("div", { class: "stat" }, h("div", { class: "label" }, "Estimated cost"),
            h("div", { class: "value", "data-testid": "estimate-total" }, money(est.cost_usd)),
            h("div", { class: "hint" }, `${est.provider} · ${est.gpu_type} × ${est.gpu_count}`)),
          h("div", { class: "stat" }, h("div", { class: "label" }, "Planned run"), h("div", { class: "value" }, `${num(steps)} steps`),
            h("div", { class: "hint" }, `≈ ${num(minutes, 3)} min + ${Math.round(est.startup_seconds)} s start-up`)),
          h("div", { class: "stat" }, h("div", { class: "label" }, "Rate"), h("div", { class: "value" }, `${money(est.usd_per_hour)}/h`),
            h("div", { class: "hint" }, `${money(est.usd_per_gpu_hour)} per GPU-hour`)),
          h("div", { class: "stat" }, h("div", { class: "label" }, "Credit available"), h("div", { class: "value" }, money(balance.available_usd)),
            h("div", { class: "hint" }, enough ? "covers this estimate" : "not enough for this estimate"))),
        h("p", { class: "muted small" }, `GPU ${money(est.gpu_cost_usd)} + storage ${money(est.storage_cost_usd)} + overhead ${money(est.overhead_cost_usd)}`,
          est.markup_usd ? ` + markup ${money(est.markup_usd)}` : "", est.spot_cost_usd != null ? ` · spot ${money(est.spot_cost_usd)}` : ""),
        enough ? null : h("div", { class: "alert error", role: "alert" }, "The available credit does not cover this estimate; the job would be refused (402)."));
    } catch (err) {
      if (mine === seq && !signal.aborted) clear(estimateBox, errorBox(err));
    }
  }

  let timer = null;
  const changed = () => {
    clear(status); // an earlier refusal may no longer apply
    syncMethod();
    clearTimeout(timer);
    timer = setTimeout(estimate, 250);
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  gpuType.addEventListener("change", syncProviders);
  syncProviders();
  syncMethod();
  estimate();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(status);
    if (!dataset.value) {
      clear(status, errorBox("Choose a dataset."));
      dataset.focus();
      return;
    }
    if (method.value === "grpo" && !rewardBoxes.some((b) => b.checked)) {
      clear(status, errorBox(rewards.length ? "Pick at least one reward function for GRPO." : "Upload a reward function first: GRPO needs one."));
      (rewardBoxes[0] || dataset).focus();
      return;
    }
    const body = {
      base_model: baseModel.value, dataset_id: dataset.value, method: method.value,
      output_name: outputName.value.trim() || undefined, hyperparameters: hyperparameters(),
      gpu: { type: gpuType.value, count: parseInt(gpuCount.value || "1", 10) },
    };
    if (method.value === "grpo") {
      const picked = rewards.map((r, i) => i).filter((i) => rewardBoxes[i].checked);
      body.reward_function_ids = picked.map((i) => rewards[i].id);
      if (picked.some((i) => rewardWeights[i].value.trim())) {
        body.reward_weights = picked.map((i) => (rewardWeights[i].value.trim() ? Number(rewardWeights[i].value) : 1));
      }
    }
    submit.disabled = true;
    try {
      const job = await api("/v1/training_jobs", { body, signal });
      navigate(`#/jobs/${job.id}`);
    } catch (err) {
      submit.disabled = false;
      clear(status, errorBox(err.param ? `${err.message} (${err.param})` : err));
      const target = err.param && form.querySelector(`[name="${err.param.replace(/^hyperparameters\./, "")}"]`);
      target?.focus();
    }
  });
}
