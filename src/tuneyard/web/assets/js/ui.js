// Small DOM and formatting helpers shared by the pages.

/** h("div", {class: "x", onclick: fn}, child, "text", [more]) -> Element */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled" || k === "multiple" || k === "required") el[k] = true;
    else if (k === "html") el.innerHTML = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: the label is tied to the control by id. */
export function field(label, control, hint) {
  if (!control.id) control.id = nextId("field");
  const hintEl = hint ? h("div", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: String(v) === String(value ?? "") }, text);
  }));
}

// ---- formatting ----

export function money(usd, digits) {
  if (usd === null || usd === undefined || Number.isNaN(Number(usd))) return "—";
  const n = Number(usd);
  if (n === 0) return "$0.00";
  const d = digits ?? (Math.abs(n) >= 100 ? 2 : Math.abs(n) >= 1 ? 2 : Math.abs(n) >= 0.01 ? 4 : 6);
  return `${n < 0 ? "−" : ""}$${Math.abs(n).toFixed(d)}`;
}

export function num(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  const abs = Math.abs(n);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return n.toExponential(2);
  return Number(n.toPrecision(digits)).toString();
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export function dateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function clock(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function ago(iso) {
  if (!iso) return "—";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const STATUS_KIND = {
  completed: "ok", serving: "ok", succeeded: "ok", active: "ok",
  failed: "bad", cancelled: "bad", unhealthy: "warn", stopped: "", revoked: "bad",
  queued: "info", provisioning: "info", running: "info", validating: "info",
};
const LIVE = new Set(["queued", "provisioning", "running", "serving"]);

export function badge(status) {
  const kind = STATUS_KIND[status] ?? "";
  return h("span", { class: `badge ${kind} ${LIVE.has(status) ? "live" : ""}`.trim(), "data-status": status }, status);
}

export function progress(done, total) {
  const pct = total ? Math.max(0, Math.min(100, (100 * done) / total)) : 0;
  return h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total || 0,
    "aria-valuenow": done || 0, "aria-label": "progress" }, h("span", { style: `width:${pct}%` }));
}

// ---- feedback ----

function toastHost() {
  let host = document.querySelector(".toasts");
  if (!host) {
    host = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(host);
  }
  return host;
}

export function toast(message, kind = "info", ms = 5000) {
  const el = h("div", { class: `toast ${kind}` }, message);
  const host = toastHost();
  host.append(el);
  while (host.children.length > 3) host.firstElementChild.remove(); // the newest few, not a wall
  setTimeout(() => el.remove(), ms);
}

export function errorBox(err) {
  const text = err instanceof Error ? err.message : String(err);
  return h("div", { class: "alert error", role: "alert" }, text);
}

export function copyButton(text, label = "Copy") {
  const btn = h("button", { type: "button", "aria-label": `${label} to clipboard` }, label);
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Non-secure origins have no async clipboard: select the text for the user instead.
      const ta = h("textarea", { "aria-hidden": "true", style: "position:fixed;opacity:0" }, text);
      document.body.append(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    btn.textContent = "Copied";
    setTimeout(() => { btn.textContent = label; }, 2000);
  });
  return btn;
}

/**
 * A destructive button that asks for a second click (no browser confirm dialog): the first click
 * arms it for 6 s and shows `confirmText`; the second runs `action`. A failed action is toasted and the
 * button disarms.
 */
export function confirmButton(text, confirmText, action, attrs = {}) {
  const btn = h("button", { type: "button", class: "danger", ...attrs }, text);
  let timer = null;
  const disarm = () => { clearTimeout(timer); btn.dataset.armed = ""; btn.textContent = text; btn.disabled = false; };
  btn.addEventListener("click", async () => {
    if (btn.dataset.armed !== "1") {
      btn.dataset.armed = "1";
      btn.textContent = confirmText;
      timer = setTimeout(disarm, 6000);
      return;
    }
    clearTimeout(timer);
    btn.disabled = true;
    try {
      await action();
    } catch (err) {
      if (err.name !== "AbortError") toast(err.message, "error");
      disarm();
    }
  });
  return btn;
}

export function stat(label, value, hint, attrs = {}) {
  return h("div", { class: "stat", ...attrs }, h("div", { class: "label" }, label), h("div", { class: "value" }, value),
    hint ? h("div", { class: "hint" }, hint) : null);
}

/** A table: columns = [{label, cell(row) -> node|string, class}]. */
export function table(columns, rows, { empty = "Nothing here yet.", caption, rowAttrs } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  // Explicit roles keep the table semantics when a phone-width stylesheet lays rows out as cards.
  return h("div", { class: "table-wrap" }, h("table", { role: "table" },
    caption ? h("caption", { class: "sr-only" }, caption) : null,
    h("thead", { role: "rowgroup" }, h("tr", { role: "row" },
      columns.map((c) => h("th", { scope: "col", role: "columnheader", class: c.class }, c.label)))),
    h("tbody", { role: "rowgroup" }, rows.map((r) => h("tr", { role: "row", ...(rowAttrs ? rowAttrs(r) : {}) },
      columns.map((c) => h("td", { role: "cell", class: c.class, "data-label": c.label }, c.cell(r))))))));
}

export function pageHead(title, sub, actions, crumbs) {
  return h("div", { class: "page-head" },
    h("div", {}, crumbs ? h("div", { class: "crumbs" }, crumbs) : null, h("h1", {}, title),
      sub ? h("p", { class: "sub" }, sub) : null),
    actions ? h("div", { class: "row" }, actions) : null);
}

/** Run `fn` now and every `ms` while the page is shown; returns a stop function. */
export function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (err) { if (err.name !== "AbortError") console.warn(err); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
