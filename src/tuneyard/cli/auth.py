"""``tuneyard login``, ``logout`` and ``whoami``."""

from __future__ import annotations

import typer

from tuneyard.cli.common import JSON_OPTION, api_command, console, fail, money, print_json, state
from tuneyard.client import Client, config, errors


@api_command
def login(url: str = typer.Option(None, "--url", help="Server root, e.g. http://127.0.0.1:8000 (no /v1)."),
          api_key: str = typer.Option(None, "--api-key", "--key", help="A vk_… key; asked for when left out."),
          no_verify: bool = typer.Option(False, "--no-verify", help="Save without checking the key."),
          json_out: bool = JSON_OPTION) -> None:
    """Check a key against a server and save both in the config file (mode 0600)."""
    url = config.normalize_url(url or state.url or config.resolve().url)
    api_key = api_key or state.api_key
    if not api_key:
        api_key = typer.prompt("API key", hide_input=True).strip()
    if not api_key.startswith("vk_"):
        fail("tuneyard keys start with vk_ (create one with `tuneyard keys create`)")
    balance = None
    if not no_verify:
        with Client(url, api_key, max_retries=1) as client:
            try:
                balance = client.billing.balance()
            except errors.Unauthorized:
                fail(f"the server at {url} rejected this key", 4)
    path = config.write_file(url, api_key)
    if json_out:
        print_json({"url": url, "config_path": str(path), "org_id": balance.org_id if balance else None,
                    "balance_usd": balance.balance_usd if balance else None})
        return
    who = f" (organization {balance.org_id}, balance {money(balance.balance_usd)})" if balance else ""
    console.print(f"Logged in to {url}{who}.\nSaved to {path}")


def logout(json_out: bool = JSON_OPTION) -> None:
    """Forget the saved server and key."""
    path = config.config_path()
    removed = config.remove_file(path)
    if json_out:
        print_json({"config_path": str(path), "removed": removed})
    else:
        console.print(f"Removed {path}" if removed else f"Not logged in ({path} does not exist)")


@api_command
def whoami(json_out: bool = JSON_OPTION) -> None:
    """Show the server, the organization the key belongs to, and its balance."""
    cfg = config.resolve(state.url, state.api_key)
    if not cfg.api_key:
        fail("not logged in: run `tuneyard login --url URL --api-key vk_…` or set TUNEYARD_API_KEY", 4)
    with Client(cfg.url, cfg.api_key) as client:
        me = client.me()
        balance = client.billing.balance()
    body = {"url": cfg.url, "url_from": cfg.url_source, "key_from": cfg.key_source, "org_id": me.org_id,
            "organization_name": me.organization_name, "plan": me.plan, "api_key_id": me.api_key_id,
            "balance_usd": balance.balance_usd}
    if json_out:
        print_json(body)
        return
    console.print(f"{cfg.url}  (from {cfg.url_source})\norganization {me.organization_name} ({me.org_id}), "
                  f"plan {me.plan}\nkey {me.api_key_id} (from {cfg.key_source})\nbalance {money(balance.balance_usd)}")


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
