"""API keys through the API (``keys list``, ``keys revoke``, and ``keys create`` for the logged-in org).

``keys create --org ORG`` (in main.py) stays an admin command acting on the database directly.
"""

from __future__ import annotations

import typer

from tuneyard.cli.common import JSON_OPTION, api_command, console, get_client, print_json, print_page


def create_via_api(name: str, json_out: bool) -> None:
    with get_client() as client:
        key = client.api_keys.create(name)
    if json_out:
        print_json(key)
    else:
        console.print(f"API key {key.id} ({key.name}), shown once: {key.key}")


@api_command
def keys_list(limit: int = typer.Option(20, "--limit"), after: str = typer.Option(None, "--after"),
              json_out: bool = JSON_OPTION) -> None:
    """List your organization's API keys (prefixes only)."""
    with get_client() as client:
        page = client.api_keys.list(limit=limit, after=after)
    print_page(page, [("id", "id"), ("name", "name"), ("key_prefix", "prefix"), ("kind", "kind"),
                      ("last_used_at", "last used"), ("expires_at", "expires"), ("created_at", "created")],
               json_out, empty="no keys", what="keys")


@api_command
def keys_revoke(key_id: str, json_out: bool = JSON_OPTION) -> None:
    """Revoke an API key (effective on its next request)."""
    with get_client() as client:
        key = client.api_keys.revoke(key_id)
    print_json(key) if json_out else console.print(f"Revoked {key.id} ({key.key_prefix}…)")


def register(keys_app: typer.Typer) -> None:
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
