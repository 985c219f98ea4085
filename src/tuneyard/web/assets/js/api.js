// The HTTP side of the dashboard: the API key, JSON calls, and Server-Sent Events read with fetch
// (EventSource cannot send an Authorization header).

const KEY = "tuneyard.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
}

export function setKey(key, remember) {
  clearKey();
  (remember ? localStorage : sessionStorage).setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, body, text) {
    const err = body && body.error ? body.error : {};
    super(err.message || (text && text.slice(0, 300)) || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.param = err.param || null;
    this.type = err.type || null;
  }
}

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

function headers(extra) {
  const h = { ...extra };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function failed(response) {
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("tuneyard:unauthorized"));
  return new ApiError(response.status, body, text);
}

/** A JSON call: `api("/v1/datasets", {query, body, form, method})`. Throws ApiError on non-2xx. */
export async function api(path, { method, query, body, form, signal } = {}) {
  const init = { method: method || (body !== undefined || form ? "POST" : "GET"), signal };
  if (form) {
    init.body = form;
    init.headers = headers();
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = headers({ "Content-Type": "application/json" });
  } else {
    init.headers = headers();
  }
  const response = await fetch(url(path, query), init);
  if (!response.ok) throw await failed(response);
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/**
 * Read an SSE stream (GET, or POST with a JSON body) and call `onEvent({id, event, data})` for each
 * event. Resolves when the server closes the stream; rejects with ApiError on a non-2xx answer.
 */
export async function stream(path, { query, body, signal, onEvent, lastEventId }) {
  const init = { signal, headers: headers({ Accept: "text/event-stream" }) };
  if (lastEventId) init.headers["Last-Event-ID"] = String(lastEventId);
  if (body !== undefined) {
    init.method = "POST";
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url(path, query), init);
  if (!response.ok) throw await failed(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = parseBlock(block);
      if (event) onEvent(event);
    }
  }
  const last = parseBlock(buffer);
  if (last) onEvent(last);
}

function parseBlock(block) {
  const data = [];
  let id = null;
  let event = "message";
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "id") id = value;
    else if (field === "event") event = value;
  }
  return data.length ? { id, event, data: data.join("\n") } : null;
}

/** Every page of a list endpoint (bounded), for small collections such as datasets or models. */
export async function listAll(path, query = {}, maxPages = 10) {
  const out = [];
  let after;
  for (let i = 0; i < maxPages; i++) {
    const page = await api(path, { query: { limit: 100, ...query, after } });
    out.push(...page.data);
    if (!page.has_more || !page.data.length) break;
    after = page.data[page.data.length - 1].id;
  }
  return out;
}
