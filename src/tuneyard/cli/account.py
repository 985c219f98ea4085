"""``tuneyard cost``, ``tuneyard billing`` and the API-key commands that go through the API."""

from __future__ import annotations

import typer

from tuneyard.cli.common import (
    JSON_OPTION,
    api_command,
    console,
    fmt,
    get_client,
    money,
    print_fields,
    print_json,
    print_page,
    print_table,
)

cost_app = typer.Typer(help="What GPU time costs here and what you have spent.", no_args_is_help=True)
billing_app = typer.Typer(help="Credit balance and the ledger.", no_args_is_help=True)

GPU = typer.Option(None, "--gpu-type", help="e.g. A100-80GB (default: this machine's accelerator).")
COUNT = typer.Option(1, "--gpu-count")
MINUTES = typer.Option(None, "--minutes", help="Duration in minutes (default 60).")
HOURS = typer.Option(None, "--hours", help="Duration in hours (instead of --minutes).")


def _minutes(minutes: float | None, hours: float | None) -> float:
    if hours is not None:
        return hours * 60
    return 60 if minutes is None else minutes


def print_report(body: dict) -> None:
    """An opaque cost payload: scalars as fields, lists of objects as tables."""
    scalars = {k: v for k, v in body.items() if not isinstance(v, list) and k != "object"}
    if scalars:
        print_fields(scalars)
    for key, value in body.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value for k in row))
            print_table(value, [(c, c) for c in columns], title=key)
        elif isinstance(value, list):
            console.print(f"[bold]{key}[/bold] {fmt(value)}")


@cost_app.command("estimate")
@api_command
def cost_estimate(gpu_type: str = GPU, gpu_count: int = COUNT, minutes: float = MINUTES, hours: float = HOURS,
                  provider: str = typer.Option(None, "--provider"), json_out: bool = JSON_OPTION) -> None:
    """Estimate the cost of a GPU shape for a duration."""
    with get_client() as client:
        body = client.cost.estimate(gpu_type, gpu_count, _minutes(minutes, hours), provider=provider)
    print_json(body) if json_out else print_report(body)


@cost_app.command("compare")
@api_command
def cost_compare(gpu_type: str = GPU, gpu_count: int = COUNT, minutes: float = MINUTES, hours: float = HOURS,
                 json_out: bool = JSON_OPTION) -> None:
    """Compare what the providers charge for a GPU shape and duration."""
    with get_client() as client:
        body = client.cost.compare(gpu_type, gpu_count, _minutes(minutes, hours))
    print_json(body) if json_out else print_report(body)


@cost_app.command("summary")
@api_command
def cost_summary(days: int = typer.Option(30, "--days"), json_out: bool = JSON_OPTION) -> None:
    """What you spent over the last DAYS days, and on what."""
    with get_client() as client:
        body = client.cost.summary(days)
    print_json(body) if json_out else print_report(body)


@cost_app.command("rates")
@api_command
def cost_rates(json_out: bool = JSON_OPTION) -> None:
    """GPU rates per provider (USD per GPU-hour)."""
    with get_client() as client:
        body = client.cost.rates()
    if json_out:
        print_json(body)
        return
    rates = body.get("rates") if isinstance(body.get("rates"), list) else []
    print_table(rates, [("gpu_type", "gpu"), ("provider", "provider"), ("usd_per_hour", "$/hour")],
                empty="no rates configured")


@billing_app.command("balance")
@api_command
def billing_balance(json_out: bool = JSON_OPTION) -> None:
    """Your organization's credit balance."""
    with get_client() as client:
        balance = client.billing.balance()
    if json_out:
        print_json(balance)
        return
    data = balance.to_dict()
    console.print(f"balance {money(balance.balance_usd)}" +
                  (f"  (available {money(data['available_usd'])}, held {money(data['held_usd'])})"
                   if data.get("available_usd") is not None and data.get("held_usd") else "") +
                  f"  organization {balance.org_id}, plan {balance.plan}")


@billing_app.command("transactions")
@api_command
def billing_transactions(limit: int = typer.Option(20, "--limit"), after: str = typer.Option(None, "--after"),
                         json_out: bool = JSON_OPTION) -> None:
    """Credits and charges, newest first."""
    with get_client() as client:
        page = client.billing.transactions(limit=limit, after=after)
    print_page(page, [("id", "id"), ("created_at", "when"), ("type", "type"), ("amount_usd", "amount $"),
                      ("description", "description"), ("reference", "for")], json_out,
               empty="no transactions", what="transactions")


@billing_app.command("burn-rate")
@api_command
def billing_burn_rate(json_out: bool = JSON_OPTION) -> None:
    """What running jobs and deployments cost per hour right now."""
    with get_client() as client:
        body = client.billing.burn_rate()
    print_json(body) if json_out else print_report(body)


@api_command
def models(json_out: bool = JSON_OPTION) -> None:
    """Models you can train or serve here: the bundled/cached base models and your completed fine-tunes."""
    with get_client() as client:
        page = client.models.list()
    print_page(page, [("id", "id"), ("type", "type"), ("source", "source"), ("base_model", "base model"),
                      ("job_id", "job")], json_out, empty="no models", what="models")


def register(app: typer.Typer) -> None:
    app.command()(models)
    app.add_typer(cost_app, name="cost")
    app.add_typer(billing_app, name="billing")
