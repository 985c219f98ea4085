// One deployment: status, metrics charts (latency percentiles, tokens/s, errors), the request log,
// a streaming chat playground, events, and stop.

import { api, stream } from "../api.js";
import { LineChart, barChart } from "../charts.js";
import { badge, clear, clock, copyButton, dateTime, duration, every, field, h, money, num, pageHead, stat, table,
  toast } from "../ui.js";

const TERMINAL = new Set(["stopped", "failed"]);

export async function render(main, { params: [depId], signal }) {
  let dep = await api(`/v1/deployments/${depId}`, { signal });
  const head = h("div");
  const stats = h("div", { class: "stats", "aria-live": "polite" });
  const alerts = h("div");
  const endpoint = h("div");
  const latency = new LineChart({ key: "latency", title: "Latency per request (ms)", series: ["total", "time to first token"], xLabel: "request" });
  const tps = new LineChart({ key: "tokens_per_second", title: "Tokens / second per request", series: ["tokens/s"], xLabel: "request" });
  const percentiles = h("div");
  const errorsChart = h("div");
  const requests = h("div", {}, h("p", { class: "muted" }, "No requests yet."));
  const events = h("ol", { class: "timeline", "aria-label": "Deployment events" });
  const playground = chatPlayground(() => dep, signal);

  main.append(head, stats, alerts, endpoint,
    h("section", { class: "panel", "aria-labelledby": "chat-title" }, h("h2", { id: "chat-title" }, "Playground"), playground.el),
    h("section", { class: "panel", "aria-labelledby": "dm-title" }, h("h2", { id: "dm-title" }, "Metrics"),
      h("div", { class: "charts" }, latency.el, tps.el, percentiles, errorsChart)),
    h("section", { class: "panel", "aria-labelledby": "req-title" }, h("h2", { id: "req-title" }, "Request log"), requests),
    h("section", { class: "panel", "aria-labelledby": "dev-title" }, h("h2", { id: "dev-title" }, "Events"), events));

  let headKey = null;
  let armed = false;
  function drawHead() {
    const key = `${dep.status}|${armed}`;
    if (key === headKey) return;
    headKey = key;
    const actions = [];
    if (!TERMINAL.has(dep.status)) {
      const stop = h("button", { type: "button", class: "danger" }, armed ? "Confirm stop" : "Stop deployment");
      stop.addEventListener("click", async () => {
        if (!armed) {
          armed = true;
          drawHead();
          setTimeout(() => { armed = false; drawHead(); }, 6000);
          return;
        }
        try {
          dep = await api(`/v1/deployments/${dep.id}/stop`, { method: "POST", signal });
          toast(`Stopping ${dep.name || dep.id}`);
        } catch (err) {
          toast(err.message, "error");
        }
        armed = false;
        draw();
      });
      actions.push(stop);
    }
    clear(head, pageHead(dep.name || dep.id,
      dep.adapter ? `LoRA fine-tune ${dep.model} on ${dep.base_model} · ${dep.engine || "engine pending"}` : `${dep.model} · ${dep.engine || "engine pending"}`,
      actions, [h("a", { href: "#/deployments" }, "Deployments"), " / ", h("span", { class: "mono" }, dep.id)]));
  }

  function draw(metrics) {
    drawHead();
    clear(stats,
      stat("Status", badge(dep.status), dep.restarts ? `${dep.restarts} restarts` : null, { "data-stat": "status" }),
      stat("Uptime", duration(dep.serving_seconds), dep.started_at ? `since ${dateTime(dep.started_at)}` : null),
      stat("Requests", num(dep.total_requests), metrics ? `${num(metrics.requests.last_24h)} in 24 h` : null, { "data-stat": "requests" }),
      stat("Tokens / s", metrics ? num(metrics.tokens_per_second, 3) : "—", "completion tokens, 24 h"),
      stat("Errors", metrics ? num(metrics.requests.errors_last_24h) : "—", metrics ? `${num(metrics.error_rate * 100, 3)}% of 24 h` : null),
      stat("Cost", money(dep.total_cost_usd), `${money(dep.cost_per_hour_usd)}/h on ${dep.gpu.type} × ${dep.gpu.count}`));
    clear(alerts, dep.error ? h("div", { class: "alert error", role: "alert" }, `${dep.error_code || "error"}: ${dep.error}`) : null,
      dep.status === "queued" || dep.status === "provisioning"
        ? h("div", { class: "alert info" }, "Starting the model worker… the playground opens when the deployment is serving.") : null);
    clear(endpoint, dep.endpoint_url ? h("section", { class: "panel", "aria-labelledby": "ep-title" },
      h("h2", { id: "ep-title" }, "Endpoint"),
      h("div", { class: "secret" }, h("code", {}, dep.endpoint_url), copyButton(dep.endpoint_url)),
      h("p", { class: "muted small" }, "OpenAI-compatible: point an OpenAI client's base URL at ",
        h("code", {}, dep.endpoint_url.replace(/\/chat\/completions$/, "")), " with an API key of this organization.")) : null);
    playground.sync();
  }

  function drawMetrics(metrics, reqs) {
    const ordered = [...reqs].reverse(); // oldest first
    latency.set([ordered.filter((r) => r.status_code < 400).map((r, i) => [i + 1, r.latency_ms]),
      ordered.filter((r) => r.status_code < 400 && r.ttft_ms != null).map((r, i) => [i + 1, r.ttft_ms])]);
    tps.set([ordered.filter((r) => r.status_code < 400 && r.latency_ms > 0 && r.completion_tokens)
      .map((r, i) => [i + 1, r.completion_tokens / (r.latency_ms / 1000)])]);
    const p = metrics.latency_ms;
    const t = metrics.ttft_ms;
    clear(percentiles, barChart({ key: "latency_percentiles", title: "Latency percentiles, 24 h (ms)", format: (v) => `${num(v, 4)} ms`,
      items: p.p50 == null ? [] : [
        { label: "p50", value: p.p50 }, { label: "p95", value: p.p95 }, { label: "p99", value: p.p99 },
        ...(t.p50 != null ? [{ label: "TTFT p50", value: t.p50 }, { label: "TTFT p95", value: t.p95 }] : [])],
      empty: "No successful requests yet" }));
    const codes = {};
    for (const r of reqs) {
      const k = r.status_code < 400 ? "ok (2xx)" : r.status_code < 500 ? `client error (${r.status_code})` : `server error (${r.status_code})`;
      codes[k] = (codes[k] || 0) + 1;
    }
    clear(errorsChart, barChart({ key: "errors", title: `Responses by status (last ${reqs.length})`,
      items: Object.entries(codes).map(([label, value]) => ({ label, value })).sort((a, b) => b.value - a.value),
      empty: "No requests yet" }));
    clear(requests, table([
      { label: "Time", cell: (r) => h("span", { class: "small nowrap", title: r.created_at }, clock(r.created_at)) },
      { label: "Status", cell: (r) => h("span", { class: `badge ${r.status_code < 400 ? "ok" : "bad"}` }, String(r.status_code)) },
      { label: "Latency", class: "num", cell: (r) => `${num(r.latency_ms, 4)} ms` },
      { label: "TTFT", class: "num", cell: (r) => r.ttft_ms != null ? `${num(r.ttft_ms, 4)} ms` : "—" },
      { label: "Tokens in/out", class: "num", cell: (r) => `${r.prompt_tokens} / ${r.completion_tokens}` },
      { label: "Mode", cell: (r) => r.streamed ? "stream" : "single" },
      { label: "Finish", cell: (r) => r.error_message ? h("span", { class: "small", style: "color:var(--bad)" }, r.error_message) : r.finish_reason || "—" },
    ], reqs, { empty: "No requests yet. Try the playground.", caption: "Request log", rowAttrs: (r) => ({ "data-request": r.id }) }));
  }

  let eventCount = -1;
  async function refresh() {
    dep = await api(`/v1/deployments/${dep.id}`, { signal });
    const [metrics, reqs, evs] = await Promise.all([
      api(`/v1/deployments/${dep.id}/metrics`, { signal }),
      api(`/v1/deployments/${dep.id}/requests`, { query: { limit: 100 }, signal }),
      api(`/v1/deployments/${dep.id}/events`, { signal })]);
    draw(metrics);
    drawMetrics(metrics, reqs.data);
    if (evs.data.length !== eventCount) {
      eventCount = evs.data.length;
      clear(events, evs.data.map((e) => h("li", { class: e.level, "data-event": e.type },
        h("time", { datetime: e.created_at }, clock(e.created_at)),
        h("div", {}, h("div", { class: "msg" }, e.message), h("div", { class: "type" }, e.type)))));
    }
  }
  draw(null);
  const stop = every(2500, refresh);
  signal.addEventListener("abort", stop);
}

function chatPlayground(getDep, pageSignal) {
  const history = [];
  const log = h("div", { class: "chat-log", role: "log", "aria-label": "Conversation", "aria-live": "polite" });
  const system = h("textarea", { name: "system", rows: 2, placeholder: "You are a helpful assistant." });
  const maxTokens = h("input", { name: "max_tokens", type: "number", min: 1, max: 4096, value: "48" });
  const temperature = h("input", { name: "temperature", type: "number", min: 0, max: 2, step: "0.1", value: "0.7" });
  const input = h("textarea", { name: "message", rows: 2, placeholder: "Say something…", "aria-label": "Message" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stopBtn = h("button", { type: "button", hidden: true }, "Stop");
  const reset = h("button", { type: "button" }, "Clear");
  const note = h("p", { class: "muted small", style: "margin:0" });
  const form = h("form", { "aria-label": "Chat" }, input, h("div", { class: "row" }, send, stopBtn));
  let controller = null;

  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  reset.addEventListener("click", () => { history.length = 0; log.replaceChildren(); });
  stopBtn.addEventListener("click", () => controller?.abort());

  function bubble(role, text) {
    const body = h("span", { class: "content" }, text);
    const el = h("div", { class: `msg ${role}`, "data-role": role }, h("span", { class: "who" }, role === "user" ? "You" : "Model"), body);
    log.append(el);
    log.scrollTop = log.scrollHeight;
    return { el, body };
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    const dep = getDep();
    if (!text || controller || dep.status !== "serving") return;
    input.value = "";
    history.push({ role: "user", content: text });
    bubble("user", text);
    const answer = bubble("assistant", "");
    answer.el.setAttribute("aria-busy", "true");
    controller = new AbortController();
    pageSignal.addEventListener("abort", () => controller?.abort(), { once: true });
    send.disabled = true;
    stopBtn.hidden = false;
    let content = "";
    let finish = null;
    try {
      const messages = [...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []), ...history];
      await stream(`/v1/deployments/${dep.id}/chat/completions`, { signal: controller.signal, body: {
        model: dep.name || dep.id, messages, stream: true, max_tokens: parseInt(maxTokens.value || "48", 10),
        temperature: Number(temperature.value || 0.7), stream_options: { include_usage: true } },
      onEvent: (e) => {
        if (e.data === "[DONE]") return;
        const chunk = JSON.parse(e.data);
        if (chunk.error) throw new Error(chunk.error.message || "stream error");
        const choice = chunk.choices?.[0];
        if (choice?.delta?.content) {
          content += choice.delta.content;
          answer.body.textContent = content;
          log.scrollTop = log.scrollHeight;
        }
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (chunk.usage) note.textContent = `${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} completion tokens`;
      } });
      history.push({ role: "assistant", content });
      if (!content) answer.body.textContent = "(empty answer)";
      answer.el.dataset.finish = finish || "stop";
    } catch (err) {
      if (err.name === "AbortError") {
        answer.el.dataset.finish = "aborted";
        history.push({ role: "assistant", content });
      } else {
        answer.el.classList.add("error");
        answer.body.textContent = `${content}${content ? "\n" : ""}⚠ ${err.message}`;
        history.pop();
      }
    } finally {
      answer.el.removeAttribute("aria-busy");
      controller = null;
      send.disabled = false;
      stopBtn.hidden = true;
      sync();
    }
  });

  let shownStatus = null;
  function sync() {
    const dep = getDep();
    const ready = dep.status === "serving";
    input.disabled = !ready;
    if (!controller) send.disabled = !ready;
    if (dep.status !== shownStatus) {
      shownStatus = dep.status;
      note.textContent = ready ? "Answers stream token by token from the deployment." : `Deployment is ${dep.status}; chat is available while it is serving.`;
    }
  }

  const el = h("div", { class: "chat" },
    h("div", { class: "form-grid" }, field("System prompt", system), field("Max tokens", maxTokens), field("Temperature", temperature)),
    log, form, h("div", { class: "row spread" }, note, reset));
  return { el, sync };
}
