// Keys: API keys (created, listed, revoked; the plaintext shown once with a copy button) and SSH keys
// (uploaded, listed, deleted; key material never comes back).

import { api, listAll } from "../api.js";
import { ago, clear, confirmButton, copyButton, dateTime, errorBox, field, h, pageHead, table, toast } from "../ui.js";

export async function render(main, { signal, me }) {
  const apiList = h("div");
  const sshList = h("div");
  const revealed = h("div", { "aria-live": "polite" });

  // ---- API keys ----
  const keyName = h("input", { name: "key_name", placeholder: "ci-pipeline", maxlength: 200, required: true });
  const expires = h("select", { name: "expires" },
    [["", "Never"], [String(86400 * 7), "7 days"], [String(86400 * 30), "30 days"], [String(86400 * 90), "90 days"]]
      .map(([v, t]) => h("option", { value: v }, t)));
  const keyStatus = h("div");
  const createKey = h("form", { "aria-label": "Create an API key" },
    h("div", { class: "form-grid" }, field("Name", keyName), field("Expires", expires)),
    h("div", { style: "height:.75rem" }), keyStatus, h("button", { type: "submit", class: "primary" }, "Create API key"));
  createKey.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(keyStatus);
    try {
      const key = await api("/v1/api_keys", { signal, body: { name: keyName.value.trim() || "default",
        expires_in_seconds: expires.value ? Number(expires.value) : undefined } });
      keyName.value = "";
      clear(revealed, h("div", { class: "alert ok", role: "status", style: "display:grid;gap:.5rem" },
        h("strong", {}, `New API key “${key.name}” — copy it now, it will not be shown again.`),
        h("div", { class: "secret" }, h("code", { "data-testid": "new-key" }, key.key), copyButton(key.key)),
        h("div", {}, h("button", { type: "button", class: "link", onclick: () => clear(revealed) }, "I have saved it — hide"))));
      await drawApiKeys();
    } catch (err) {
      clear(keyStatus, errorBox(err));
    }
  });

  async function drawApiKeys() {
    const keys = await listAll("/v1/api_keys");
    clear(apiList, table([
      { label: "Name", cell: (k) => h("div", {}, k.name, k.id === me?.api_key_id ? h("span", { class: "badge info", style: "margin-left:.4rem" }, "this session") : null,
        h("div", { class: "muted small mono" }, k.id)) },
      { label: "Key", cell: (k) => h("code", {}, `${k.key_prefix}…`) },
      { label: "Kind", cell: (k) => k.kind + (k.deployment_id ? ` (${k.deployment_id})` : "") },
      { label: "Created", cell: (k) => h("span", { class: "small nowrap", title: k.created_at }, ago(k.created_at)) },
      { label: "Last used", cell: (k) => h("span", { class: "small nowrap", title: k.last_used_at || "" }, k.last_used_at ? ago(k.last_used_at) : "never") },
      { label: "Expires", cell: (k) => h("span", { class: "small nowrap" }, k.expires_at ? dateTime(k.expires_at) : "never") },
      { label: "", cell: (k) => revokeButton(k) },
    ], keys.filter((k) => !k.revoked), { empty: "No API keys.", caption: "API keys", rowAttrs: (k) => ({ "data-key": k.id, "data-key-name": k.name }) }));
  }

  function revokeButton(k) {
    const own = k.id === me?.api_key_id;
    return confirmButton("Revoke", own ? "Revoke and sign out" : "Confirm revoke", async () => {
      await api(`/v1/api_keys/${k.id}`, { method: "DELETE", signal });
      toast(`Revoked ${k.name} (${k.key_prefix}…)`);
      if (!own) await drawApiKeys();
    }, { "aria-label": `Revoke API key ${k.name}` });
  }

  // ---- SSH keys ----
  const sshName = h("input", { name: "ssh_name", placeholder: "gpu-vm", maxlength: 200, required: true });
  const sshProvider = h("input", { name: "ssh_provider", placeholder: "lambda, aws, …", maxlength: 60 });
  const pub = h("textarea", { name: "public_key", rows: 2, placeholder: "ssh-ed25519 AAAA… user@host", required: true });
  const priv = h("textarea", { name: "private_key", rows: 4, placeholder: "-----BEGIN OPENSSH PRIVATE KEY-----", required: true,
    autocomplete: "off", spellcheck: "false" });
  const sshStatus = h("div");
  const createSsh = h("form", { "aria-label": "Add an SSH key" },
    h("div", { class: "form-grid" }, field("Name", sshName), field("Provider", sshProvider, "Optional")),
    h("div", { style: "height:.75rem" }), field("Public key", pub),
    h("div", { style: "height:.75rem" }), field("Private key", priv, "Encrypted at rest; never returned by the API."),
    h("div", { style: "height:.75rem" }), sshStatus, h("button", { type: "submit", class: "primary" }, "Add SSH key"));
  createSsh.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(sshStatus);
    try {
      const key = await api("/v1/ssh_keys", { signal, body: { name: sshName.value.trim(), public_key: pub.value.trim(),
        private_key: priv.value, provider: sshProvider.value.trim() || undefined } });
      toast(`Added SSH key ${key.name} (${key.fingerprint})`);
      for (const el of [sshName, sshProvider, pub, priv]) el.value = "";
      await drawSshKeys();
    } catch (err) {
      clear(sshStatus, errorBox(err));
    }
  });

  async function drawSshKeys() {
    const keys = await listAll("/v1/ssh_keys");
    clear(sshList, table([
      { label: "Name", cell: (k) => h("div", {}, k.name, h("div", { class: "muted small mono" }, k.id)) },
      { label: "Type", cell: (k) => h("span", { class: "nowrap small" }, k.key_type || "—") },
      { label: "Fingerprint", cell: (k) => h("code", { class: "small", style: "overflow-wrap:anywhere" }, k.fingerprint) },
      { label: "Provider", cell: (k) => k.provider || "—" },
      { label: "Added", cell: (k) => h("span", { class: "small nowrap" }, ago(k.created_at)) },
      { label: "", cell: (k) => confirmButton("Delete", "Confirm delete", async () => {
        await api(`/v1/ssh_keys/${k.id}`, { method: "DELETE", signal });
        toast(`Deleted SSH key ${k.name}`);
        await drawSshKeys();
      }, { "aria-label": `Delete SSH key ${k.name}` }) },
    ], keys, { empty: "No SSH keys. Add one to run jobs on a GPU VM over SSH.", caption: "SSH keys", rowAttrs: (k) => ({ "data-ssh-key": k.id }) }));
  }

  main.append(pageHead("Keys", "API keys for clients and SSH keys for remote GPU machines."),
    h("section", { class: "panel", "aria-labelledby": "ak-title" }, h("h2", { id: "ak-title" }, "API keys"), createKey,
      h("div", { style: "height:.75rem" }), revealed, apiList),
    h("section", { class: "panel", "aria-labelledby": "ssh-title" }, h("h2", { id: "ssh-title" }, "SSH keys"), createSsh,
      h("div", { style: "height:1rem" }), sshList));
  await Promise.all([drawApiKeys(), drawSshKeys()]);
}
