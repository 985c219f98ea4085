"""``tuneyard`` commands: the server, the admin commands that act on the database directly, and
(registered at the end, one module each) the user commands that go through the HTTP client."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

import typer
from rich.console import Console

from tuneyard.context import Context
from tuneyard.errors import TuneyardError

app = typer.Typer(help="tuneyard: self-hosted post-training and serving for open LLMs.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations (admin: acts on the database directly).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: list/revoke/create through the API; `create --org` is admin (database).",
                        no_args_is_help=True)
credits_app = typer.Typer(help="Credit (admin: acts on the database directly).", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
console = Console()
err = Console(stderr=True)


@app.callback()
def _global_options(url: str = typer.Option(None, "--url", envvar="TUNEYARD_URL", show_envvar=False,
                                            help="Server root for the user commands (else TUNEYARD_URL or login)."),
                    api_key: str = typer.Option(None, "--api-key", envvar="TUNEYARD_API_KEY", show_envvar=False,
                                                help="API key for the user commands (else TUNEYARD_API_KEY or login).")
                    ) -> None:
    from tuneyard.cli.common import state

    state.url, state.api_key = url, api_key


def _admin_ctx() -> Context:
    ctx = Context.from_settings()
    ctx.db.migrate()
    return ctx


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
          port: int = typer.Option(8000, help="Port to listen on."),
          log_level: str = typer.Option("info")) -> None:
    """Run the API server (migrates the database first; creates a key on first start)."""
    import uvicorn

    from tuneyard.api.app import create_app
    from tuneyard.server import prepare

    ctx = Context.from_settings()
    key_file = prepare(ctx)
    if key_file:
        console.print(f"First start: created organization 'default' and an API key, saved to {key_file}")
    console.print(f"tuneyard listening on http://{host}:{port}  (data dir: {ctx.settings.data_dir})")
    uvicorn.run(create_app(ctx), host=host, port=port, log_level=log_level)


@app.command()
def worker() -> None:
    """Run a scheduler worker alone (for several workers beside stateless `serve` replicas)."""
    import logging
    import signal
    import threading

    from tuneyard.scheduler.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = Context.from_settings()
    ctx.db.migrate()
    w = Worker(ctx)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from tuneyard.inference.supervisor import Supervisor

    supervisor = Supervisor(ctx)  # deployments: starts, health-checks and stops their worker processes
    w.start()
    supervisor.start()
    console.print(f"tuneyard worker {w.id} running (executor: {w.executor.name})")
    stop.wait()
    supervisor.stop()
    w.stop()


@orgs_app.command("create")
def orgs_create(name: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Create an organization and its first API key (printed once)."""
    from tuneyard.services import orgs

    ctx = _admin_ctx()
    try:
        with ctx.db.session() as session:
            org = orgs.create_org(session, name, initial_credit_usd=ctx.settings.initial_credit_usd)
            key, plaintext = orgs.create_key(session, org.id, "default")
    except TuneyardError as exc:
        _fail(exc.message)
    if json_out:
        print(json.dumps({"id": org.id, "name": org.name, "api_key": plaintext, "api_key_id": key.id}))
    else:
        console.print(f"Created organization {org.name} ({org.id})\nAPI key (shown once): {plaintext}")


@orgs_app.command("list")
def orgs_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """List organizations."""
    from sqlalchemy import select

    from tuneyard.store.models import Organization

    ctx = _admin_ctx()
    with ctx.db.session() as session:
        rows = [{"id": o.id, "name": o.name, "plan": o.plan} for o in session.execute(select(Organization)).scalars()]
    if json_out:
        print(json.dumps(rows))
    else:
        for r in rows:
            console.print(f"{r['id']}  {r['name']}  {r['plan']}")


@keys_app.command("create")
def keys_create(org: str = typer.Option(None, help="Organization id or name: acts on the database as admin "
                                                   "(the default when not logged in: 'default')."),
                name: str = typer.Option("cli", help="A name for the key."),
                json_out: bool = typer.Option(False, "--json")) -> None:
    """Create an API key (printed once): through the API when logged in, else for ORG in the database."""
    from tuneyard.cli import keys as api_keys
    from tuneyard.cli.common import api_command, state
    from tuneyard.client import config
    from tuneyard.services import orgs

    if org is None and (state.api_key or config.has_login()):
        return api_command(api_keys.create_via_api)(name, json_out)
    org = org or "default"

    ctx = _admin_ctx()
    try:
        with ctx.db.session() as session:
            org_row = orgs.get_org(session, org)
            key, plaintext = orgs.create_key(session, org_row.id, name)
    except TuneyardError as exc:
        _fail(exc.message)
    if json_out:
        print(json.dumps({"id": key.id, "org_id": org_row.id, "key": plaintext, "key_prefix": key.key_prefix}))
    else:
        console.print(f"API key for {org_row.name} (shown once): {plaintext}")


@credits_app.command("grant")
def credits_grant(org: str, amount: str, description: str = typer.Option("Credit grant by an admin"),
                  json_out: bool = typer.Option(False, "--json")) -> None:
    """Add AMOUNT USD of credit to ORG (recorded as a transaction)."""
    from tuneyard.services import billing, orgs

    try:
        value = Decimal(amount)
    except InvalidOperation:
        _fail(f"AMOUNT must be a number of USD, got {amount!r}")
    ctx = _admin_ctx()
    try:
        with ctx.db.session() as session:
            org_row = orgs.get_org(session, org)
            txn = billing.grant(session, org_row.id, value, description)
            new_balance = billing.balance(session, org_row.id)
    except TuneyardError as exc:
        _fail(exc.message)
    if json_out:
        print(json.dumps({"transaction_id": txn.id, "org_id": org_row.id, "balance_usd": float(new_balance)}))
    else:
        console.print(f"Granted ${value} to {org_row.name}; balance ${new_balance:.2f}")


# User commands: they talk to a server through tuneyard.client (one module per group).
from tuneyard.cli import account, auth, datasets, deployments, jobs, keys, quickstart  # noqa: E402

for _module in (auth, datasets, jobs, deployments, account, quickstart):
    _module.register(app)
keys.register(keys_app)
