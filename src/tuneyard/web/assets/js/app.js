// The dashboard shell: sign-in with an API key, navigation, and a hash router that loads one page
// module at a time. Each page gets a context whose AbortSignal fires when the user navigates away,
// which stops its timers and streams.

import { api, clearKey, getKey, setKey } from "./api.js";
import { clear, errorBox, h } from "./ui.js";

const NAV = [
  ["#/jobs", "Training jobs", "jobs"],
  ["#/datasets", "Datasets", "datasets"],
  ["#/rewards", "Reward functions", "rewards"],
  ["#/deployments", "Deployments", "deployments"],
  ["#/billing", "Cost & billing", "billing"],
  ["#/keys", "Keys", "keys"],
];

const ROUTES = [
  [/^jobs$/, "./pages/jobs.js", "renderList"],
  [/^jobs\/new$/, "./pages/new_job.js", "render"],
  [/^jobs\/([\w-]+)$/, "./pages/job.js", "render"],
  [/^datasets$/, "./pages/datasets.js", "renderList"],
  [/^datasets\/([\w-]+)$/, "./pages/datasets.js", "renderOne"],
  [/^rewards$/, "./pages/rewards.js", "renderList"],
  [/^rewards\/([\w-]+)$/, "./pages/rewards.js", "renderOne"],
  [/^deployments$/, "./pages/deployments.js", "renderList"],
  [/^deployments\/([\w-]+)$/, "./pages/deployment.js", "render"],
  [/^billing$/, "./pages/billing.js", "render"],
  [/^keys$/, "./pages/keys.js", "render"],
];

const root = document.getElementById("app");
let current = null; // AbortController of the page on screen
let me = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  return { path: path.replace(/\/$/, "") || "jobs", query: Object.fromEntries(new URLSearchParams(qs || "")) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signIn(message) {
  current?.abort();
  current = null;
  me = null;
  const input = h("input", { id: "api-key", type: "password", name: "api-key", autocomplete: "off", spellcheck: "false",
    placeholder: "vk_…", required: true, "aria-describedby": "api-key-hint" });
  const remember = h("input", { type: "checkbox", id: "remember" });
  const status = h("div", { "aria-live": "assertive" }, message ? h("div", { class: "alert error", role: "alert" }, message) : null);
  const button = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "panel", "aria-labelledby": "signin-title" },
    h("div", { class: "row" }, h("img", { src: "/assets/favicon.svg", alt: "", width: 28, height: 28 }),
      h("h1", { id: "signin-title" }, "Sign in to tuneyard")),
    h("p", { class: "muted", style: "margin:0" }, "Use an API key of your organization. `tuneyard serve` prints where the first one is saved."),
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input,
      h("div", { class: "hint", id: "api-key-hint" }, "Sent as a Bearer token to this server only.")),
    h("label", { class: "check", for: "remember" }, remember, "Remember on this device"),
    status, button);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    setKey(input.value.trim(), remember.checked);
    try {
      me = await api("/v1/me");
      const target = parseHash().path === "signin" ? "#/jobs" : location.hash || "#/jobs";
      if (location.hash === target) route();
      else location.hash = target;
    } catch (err) {
      clearKey();
      clear(status, errorBox(err.status === 401 ? "That API key was not accepted." : err));
      button.disabled = false;
      input.focus();
    }
  });
  clear(root, h("div", { class: "signin" }, form));
  input.focus();
}

function shell() {
  let main = document.getElementById("main");
  if (main) return main;
  main = h("main", { id: "main", tabindex: "-1" });
  const signOut = h("button", { type: "button", onclick: () => { clearKey(); location.hash = "#/signin"; } }, "Sign out");
  clear(root, h("div", { class: "shell" },
    h("header", { class: "sidebar" },
      h("a", { class: "brand", href: "#/jobs" }, h("img", { src: "/assets/favicon.svg", alt: "" }), "tuneyard"),
      h("nav", { class: "nav", "aria-label": "Main" }, NAV.map(([href, label, key]) => h("a", { href, "data-nav": key }, label))),
      h("div", { class: "account" }, h("span", { class: "org", id: "org-name" }, me ? me.organization_name : ""), signOut)),
    main));
  return main;
}

async function route() {
  if (!getKey()) return signIn();
  const { path, query } = parseHash();
  if (path === "signin") return signIn();
  if (!me) {
    try {
      me = await api("/v1/me");
    } catch (err) {
      if (err.status === 401) return signIn("Your API key is no longer valid. Sign in again.");
    }
  }
  const main = shell();
  const org = document.getElementById("org-name");
  if (org && me) org.textContent = me.organization_name;
  const section = path.split("/")[0];
  for (const a of document.querySelectorAll(".nav a")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const match = ROUTES.map(([re, mod, fn]) => [path.match(re), mod, fn]).find(([m]) => m);
  if (!match) {
    clear(main, h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, location.hash), ". ",
      h("a", { href: "#/jobs" }, "Go to training jobs")));
    return;
  }
  const [m, mod, fn] = match;
  clear(main, h("p", { class: "muted" }, "Loading…"));
  try {
    const page = await import(mod);
    if (controller.signal.aborted) return;
    main.replaceChildren();
    await page[fn](main, { params: m.slice(1), query, signal: controller.signal, me, navigate });
  } catch (err) {
    if (controller.signal.aborted || err.name === "AbortError") return;
    if (err.status === 401) return signIn("Your API key is no longer valid. Sign in again.");
    console.error(err);
    clear(main, errorBox(err));
  }
  document.title = `${main.querySelector("h1")?.textContent || "Dashboard"} · tuneyard`;
}

window.addEventListener("hashchange", route);
window.addEventListener("tuneyard:unauthorized", () => {
  // While the sign-in form is up, it reports a refused key itself.
  if (getKey() && !document.getElementById("api-key")) {
    clearKey();
    signIn("Your API key is no longer valid (revoked or expired). Sign in again.");
  }
});
route();
