// One training job: live status, log tail (SSE), events timeline (SSE) feeding the metric charts,
// checkpoints with download links, cost so far, cancel and deploy.

import { api, stream } from "../api.js";
import { LineChart } from "../charts.js";
import { badge, bytes, clear, clock, dateTime, duration, errorBox, every, h, money, num, pageHead, progress, sleep,
  stat, table, toast } from "../ui.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const MAX_LOG_LINES = 3000;

export async function render(main, { params: [jobId], signal, navigate }) {
  let job = await api(`/v1/training_jobs/${jobId}`, { signal });
  const head = h("div");
  const stats = h("div", { class: "stats", "aria-live": "polite" });
  const errorSlot = h("div");
  const charts = {
    loss: new LineChart({ key: "loss", title: "Loss", series: ["loss"] }),
    reward: new LineChart({ key: "reward", title: "Reward", series: ["mean reward", "std"] }),
    lr: new LineChart({ key: "learning_rate", title: "Learning rate", series: ["learning rate"], format: (v) => num(v, 3) }),
    tps: new LineChart({ key: "tokens_per_second", title: "Tokens / second", series: ["tokens/s"] }),
  };
  const points = { loss: [], reward: [], rewardStd: [], lr: [], tps: [] };
  const chartGrid = h("div", { class: "charts" });
  const log = h("pre", { class: "log", tabindex: "0", "aria-label": "Job log", "data-testid": "job-log" });
  const logState = h("span", { class: "muted small" }, "connecting…");
  const timeline = h("ol", { class: "timeline", "aria-label": "Job events" });
  const checkpoints = h("div", {}, h("p", { class: "muted" }, "No checkpoints yet."));
  const hyper = h("div");

  main.append(head, stats, errorSlot,
    h("section", { class: "panel", "aria-labelledby": "charts-title" },
      h("h2", { id: "charts-title" }, "Metrics"), chartGrid),
    h("div", { class: "grid two" },
      h("section", { class: "panel", "aria-labelledby": "log-title" },
        h("div", { class: "row spread" }, h("h2", { id: "log-title" }, "Logs"), logState), log),
      h("section", { class: "panel", "aria-labelledby": "events-title" },
        h("h2", { id: "events-title" }, "Events"), timeline)),
    h("div", { class: "grid two" },
      h("section", { class: "panel", "aria-labelledby": "ckpt-title" }, h("h2", { id: "ckpt-title" }, "Checkpoints"), checkpoints),
      h("section", { class: "panel", "aria-labelledby": "hp-title" }, h("h2", { id: "hp-title" }, "Configuration"), hyper)));

  // ---- header, stats, actions ----
  let confirmCancel = false;
  let headKey = null;
  function drawJob() {
    drawStats();
    const key = `${job.status}|${job.cancel_requested}|${confirmCancel}`;
    if (key === headKey) return;
    headKey = key;
    const actions = [];
    if (!TERMINAL.has(job.status)) {
      const cancel = h("button", { type: "button", class: "danger", disabled: job.cancel_requested },
        job.cancel_requested ? "Cancelling…" : confirmCancel ? "Confirm cancel" : "Cancel job");
      cancel.addEventListener("click", async () => {
        if (!confirmCancel) {
          confirmCancel = true;
          drawJob();
          setTimeout(() => { confirmCancel = false; drawJob(); }, 6000);
          return;
        }
        try {
          job = await api(`/v1/training_jobs/${job.id}/cancel`, { method: "POST", signal });
          toast(`Cancellation requested for ${job.id}`);
        } catch (err) {
          toast(err.message, "error");
        }
        confirmCancel = false;
        drawJob();
      });
      actions.push(cancel);
    }
    if (job.status === "completed") {
      const deploy = h("button", { type: "button", class: "primary" }, "Deploy");
      deploy.addEventListener("click", async () => {
        deploy.disabled = true;
        try {
          const dep = await api("/v1/deployments", { body: { model: job.id, source: "training_job",
            name: job.output_name || undefined, gpu: job.gpu_requested } });
          navigate(`#/deployments/${dep.id}`);
        } catch (err) {
          toast(err.message, "error");
          deploy.disabled = false;
        }
      });
      actions.push(deploy);
    }
    clear(head, pageHead(job.output_name || job.id,
      `${job.method.toUpperCase()} on ${job.base_model} · dataset ${job.dataset_id}`, actions,
      [h("a", { href: "#/jobs" }, "Training jobs"), " / ", h("span", { class: "mono" }, job.id)]));
    drawConfig();
  }

  function drawStats() {
    const steps = job.total_steps ? `${job.current_step} / ${job.total_steps}` : job.current_step ? String(job.current_step) : "—";
    clear(stats,
      stat("Status", badge(job.status), job.cancel_requested && !TERMINAL.has(job.status) ? "cancel requested" : null, { "data-stat": "status" }),
      stat("Step", steps, job.total_steps ? progress(job.current_step, job.total_steps) : null, { "data-stat": "step" }),
      stat("Loss", num(job.current_loss), null, { "data-stat": "loss" }),
      stat("Cost so far", money(job.cost_usd), job.estimated_cost_usd != null ? `estimate ${money(job.estimated_cost_usd)}` : null,
        { "data-stat": "cost" }),
      stat("Duration", duration(job.duration_seconds), job.started_at ? `started ${dateTime(job.started_at)}` : null),
      stat("GPU", `${(job.gpu || job.gpu_requested).type} × ${(job.gpu || job.gpu_requested).count}`, job.provider),
      stat("Tokens trained", num(job.trained_tokens)));
    clear(errorSlot, job.error ? h("div", { class: "alert error", role: "alert" }, `${job.error.code}: ${job.error.message}`) : null);
  }

  function drawConfig() {
    clear(hyper, h("dl", { class: "kv" },
      h("dt", {}, "Method"), h("dd", {}, job.method),
      h("dt", {}, "Base model"), h("dd", {}, job.base_model),
      h("dt", {}, "Dataset"), h("dd", {}, h("a", { href: `#/datasets/${job.dataset_id}` }, job.dataset_id)),
      job.reward_function_ids?.length ? [h("dt", {}, "Reward functions"), h("dd", {},
        job.reward_function_ids.map((id, i) => [i ? ", " : "", h("a", { href: `#/rewards/${id}` }, id),
          job.reward_weights ? ` × ${job.reward_weights[i]}` : ""]))] : null,
      Object.entries(job.hyperparameters || {}).map(([k, v]) => [h("dt", { class: "mono small" }, k), h("dd", { class: "mono small" }, JSON.stringify(v))]),
      h("dt", {}, "Created"), h("dd", {}, dateTime(job.created_at)),
      job.completed_at ? [h("dt", {}, "Finished"), h("dd", {}, dateTime(job.completed_at))] : null));
  }

  function drawCharts() {
    charts.loss.set([points.loss]);
    charts.reward.set([points.reward, points.rewardStd]);
    charts.lr.set([points.lr]);
    charts.tps.set([points.tps]);
    const shown = [charts.loss.el];
    if (job.method === "grpo" || points.reward.length) shown.push(charts.reward.el);
    shown.push(charts.lr.el, charts.tps.el);
    if (chartGrid.children.length !== shown.length) clear(chartGrid, shown);
  }

  // ---- checkpoints ----
  let checkpointsShown = -1;
  async function drawCheckpoints(force = false) {
    const list = await api(`/v1/training_jobs/${job.id}/checkpoints`, { signal });
    if (!force && list.data.length === checkpointsShown) return;
    checkpointsShown = list.data.length;
    let model = null;
    if (job.status === "completed") {
      try { model = await api(`/v1/training_jobs/${job.id}/model`, { signal }); } catch { model = null; }
    }
    clear(checkpoints,
      model?.download_url ? h("p", {}, h("a", { class: "button primary", href: model.download_url, download: "" },
        "Download model weights"), " ", h("span", { class: "muted small" }, `final checkpoint, step ${model.step}; links expire in ${duration(model.expires_in_seconds)}`)) : null,
      table([
        { label: "Checkpoint", cell: (c) => h("div", {}, `step ${c.step}`, c.final ? h("span", { class: "badge ok", style: "margin-left:.4rem" }, "final") : null,
          h("div", { class: "muted small mono" }, c.id)) },
        { label: "Files", cell: (c) => h("ul", { style: "margin:0;padding-left:1rem" }, c.files.map((f) =>
          h("li", {}, h("a", { href: f.url, download: "" }, f.path), h("span", { class: "muted small" }, ` ${bytes(f.bytes)}`)))) },
        { label: "Saved", cell: (c) => h("span", { class: "small nowrap" }, clock(c.created_at)) },
      ], list.data, { empty: TERMINAL.has(job.status) ? "This job saved no checkpoints." : "No checkpoints yet.", caption: "Checkpoints" }));
  }

  // ---- events: timeline + charts, live ----
  let lastSeq = 0;
  function onEvent(e) {
    if (e.seq <= lastSeq) return;
    lastSeq = e.seq;
    const d = e.data || {};
    if (e.type === "metrics") {
      const x = Number(d.step);
      if (d.loss != null) points.loss.push([x, Number(d.loss)]);
      if (d.reward_mean != null) points.reward.push([x, Number(d.reward_mean)]);
      if (d.reward_std != null) points.rewardStd.push([x, Number(d.reward_std)]);
      if (d.learning_rate != null) points.lr.push([x, Number(d.learning_rate)]);
      if (d.tokens_per_second != null) points.tps.push([x, Number(d.tokens_per_second)]);
      drawCharts();
    }
    const stick = timeline.scrollTop + timeline.clientHeight >= timeline.scrollHeight - 8;
    timeline.append(h("li", { class: e.level, "data-event": e.type },
      h("time", { datetime: e.created_at }, clock(e.created_at)),
      h("div", {}, h("div", { class: "msg" }, e.message), h("div", { class: "type" }, e.type))));
    if (stick) timeline.scrollTop = timeline.scrollHeight;
    if (e.type === "checkpoint.saved") drawCheckpoints().catch(() => {});
  }

  async function followEvents() {
    while (!signal.aborted) {
      try {
        await stream(`/v1/training_jobs/${job.id}/events`, { query: { stream: true, after: lastSeq || undefined }, signal,
          onEvent: (ev) => {
            if (ev.data.startsWith("[Job")) return;
            onEvent(JSON.parse(ev.data));
          } });
      } catch (err) {
        if (signal.aborted) return;
        console.warn("events stream", err);
      }
      if (TERMINAL.has(job.status)) return;
      await sleep(2000, signal);
    }
  }

  // ---- logs, live ----
  let lastLine = 0;
  function appendLog(text) {
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    const cls = text.startsWith("[tuneyard]") || text.startsWith("[Job") ? "sys" : /error|traceback/i.test(text) ? "err" : null;
    log.append(h("span", { class: cls }, `${text}\n`));
    while (log.childNodes.length > MAX_LOG_LINES) log.firstChild.remove();
    if (stick) log.scrollTop = log.scrollHeight;
  }
  async function followLogs() {
    while (!signal.aborted) {
      try {
        logState.textContent = "live";
        let ended = false;
        await stream(`/v1/training_jobs/${job.id}/logs`, { signal, lastEventId: lastLine || undefined, onEvent: (ev) => {
          if (ev.id && /^\d+$/.test(ev.id)) lastLine = Number(ev.id);
          else if (ev.data.startsWith("[Job ")) ended = true;
          appendLog(ev.data);
        } });
        if (ended) {
          logState.textContent = "finished";
          return;
        }
      } catch (err) {
        if (signal.aborted) return;
        logState.textContent = err.code === "job_pending" ? "waiting for a runner…" : "reconnecting…";
      }
      await sleep(2000, signal);
    }
  }

  drawJob();
  drawCharts();
  drawCheckpoints(true).catch((err) => clear(checkpoints, errorBox(err)));
  followEvents();
  followLogs();
  let wasTerminal = TERMINAL.has(job.status);
  const stop = every(2000, async () => {
    if (wasTerminal) return;
    job = await api(`/v1/training_jobs/${job.id}`, { signal });
    drawJob();
    if (TERMINAL.has(job.status)) {
      wasTerminal = true;
      await drawCheckpoints(true);
    }
  });
  signal.addEventListener("abort", stop);
}
