// A drag-and-drop upload form. Validation errors come from the API ("line 3: …"); the offending
// line of the local file is shown under the message so the user sees what to fix.

import { bytes, clear, h, nextId } from "./ui.js";

/**
 * uploader({ title, accept, hint, extraFields: [node], submit: async (file) => result, done(result) })
 * `preScan(text)` may return extra [{line, message}] problems found in the browser.
 */
export function uploader({ title, accept, hint, extraFields = [], submit, done, preScan }) {
  const inputId = nextId("file");
  const input = h("input", { type: "file", id: inputId, name: "file", accept, "aria-describedby": `${inputId}-hint` });
  const chosen = h("div", { class: "small muted", "aria-live": "polite" }, "No file chosen");
  const zone = h("div", { class: "dropzone", "data-testid": "dropzone" },
    h("strong", {}, "Drop a file here"),
    h("span", { class: "muted small", id: `${inputId}-hint` }, hint),
    h("label", { for: inputId, class: "sr-only" }, "File to upload"), input, chosen);
  const errors = h("div", { "aria-live": "assertive" });
  const button = h("button", { type: "submit", class: "primary", disabled: true }, "Upload");
  const form = h("form", { class: "panel", "aria-label": title }, h("h2", {}, title),
    h("div", { class: "form-grid" }, extraFields), h("div", { style: "height:.75rem" }), zone,
    h("div", { style: "height:.75rem" }), errors, button);
  let file = null;

  function choose(f) {
    file = f || null;
    button.disabled = !file;
    clear(errors);
    chosen.textContent = file ? `${file.name} · ${bytes(file.size)}` : "No file chosen";
  }
  input.addEventListener("change", () => choose(input.files[0]));
  zone.addEventListener("click", (ev) => { if (ev.target === zone) input.click(); });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, (ev) => { ev.preventDefault(); zone.classList.remove("over"); });
  }
  zone.addEventListener("drop", (ev) => {
    const f = ev.dataTransfer?.files?.[0];
    if (!f) return;
    try { input.files = ev.dataTransfer.files; } catch { /* older browsers: the input keeps its own state */ }
    choose(f);
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!file) return;
    button.disabled = true;
    button.textContent = "Uploading…";
    clear(errors);
    try {
      const result = await submit(file);
      choose(null);
      input.value = "";
      done(result);
    } catch (err) {
      await showErrors(err, file);
      button.disabled = false;
    }
    button.textContent = "Upload";
  });

  async function showErrors(err, f) {
    let text = "";
    try { text = await f.text(); } catch { /* unreadable */ }
    const lines = text.split(/\r?\n/);
    const items = [];
    const m = /line (\d+):\s*(.*)$/s.exec(err.message || "");
    const apiLine = m ? Number(m[1]) : null;
    items.push({ line: apiLine, message: err.message, source: "server" });
    for (const p of (preScan && text ? preScan(text) : [])) {
      if (p.line !== apiLine) items.push({ ...p, source: "browser" });
    }
    clear(errors, h("div", { class: "alert error", role: "alert" },
      `${f.name} was not accepted (${err.status || "error"}).`),
    h("ul", { class: "error-lines", "aria-label": "Validation errors" }, items.slice(0, 12).map((it) =>
      h("li", { "data-line": it.line ?? "" },
        it.line ? h("strong", {}, `Line ${it.line}: `) : null,
        it.source === "server" ? (m ? m[2] : it.message) : it.message,
        it.source === "browser" ? h("span", { class: "muted small" }, " (found in the browser)") : null,
        it.line && lines[it.line - 1] !== undefined ? h("code", {}, lines[it.line - 1].slice(0, 400)) : null))));
  }

  return form;
}

/** Lines of a JSONL text that are not JSON objects (the server stops at the first). */
export function scanJsonl(text, max = 10) {
  const out = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || out.length >= max) return;
    try {
      const v = JSON.parse(line);
      if (typeof v !== "object" || v === null || Array.isArray(v)) out.push({ line: i + 1, message: "not a JSON object" });
    } catch (e) {
      out.push({ line: i + 1, message: `not valid JSON (${e.message.replace(/^JSON\.parse: /, "").slice(0, 120)})` });
    }
  });
  return out;
}
