"""``tuneyard quickstart``: the whole platform in one command, through the client.

Starts an embedded server unless one is configured (``--url``, ``tuneyard login`` or
``TUNEYARD_URL``), uploads the bundled example dataset and reward function, runs an SFT job then a
GRPO job on the bundled SmolLM2-135M, deploys the result, asks it a question, and ends with what
each step cost and where everything is.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from tuneyard.cli.common import api_command, console, err, fail, print_json, print_table, state
from tuneyard.cli.embedded import EmbeddedServer, default_data_dir
from tuneyard.cli.progress import follow_deployment, follow_job, job_summary, stream_answer
from tuneyard.client import Client, TrainingJob, config, errors

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
QUESTION = "What is 12 plus 7?"


def sft_hyperparameters(steps: int) -> dict:
    return {"max_steps": steps, "batch_size": 4, "learning_rate": 5e-4, "max_length": 64, "lora_r": 8, "seed": 0}


def grpo_hyperparameters(steps: int) -> dict:
    return {"max_steps": steps, "batch_size": 4, "num_generations": 4, "max_completion_length": 24,
            "max_prompt_length": 64, "learning_rate": 1e-4, "lora_r": 8, "seed": 0}


def bundled(name: str) -> Path:
    return Path(str(resources.files("tuneyard") / "data" / name))


@dataclass
class Run:
    """What the quickstart made, for the closing summary (and ``--json``)."""

    url: str
    embedded: EmbeddedServer | None = None
    datasets: dict[str, str] = field(default_factory=dict)
    reward_function_id: str | None = None
    jobs: dict[str, TrainingJob] = field(default_factory=dict)
    curves: dict[str, dict] = field(default_factory=dict)
    deployment: dict | None = None
    deployment_skipped: str | None = None
    question: str | None = None
    answer: str | None = None
    balance_before: float | None = None
    balance_after: float | None = None
    costs: list[dict] = field(default_factory=list)


def _curve(client: Client, job_id: str) -> dict:
    """First and last loss and reward from the job's metrics events."""
    losses, rewards = [], []
    for event in client.training_jobs.events(job_id, limit=100).auto_paging_iter():
        if event.type == "metrics":
            if event.data.get("loss") is not None:
                losses.append(float(event.data["loss"]))
            if event.data.get("reward_mean") is not None:
                rewards.append(float(event.data["reward_mean"]))
    out: dict = {}
    if losses:
        out["loss"] = {"first": losses[0], "last": losses[-1], "points": len(losses)}
    if rewards:
        out["reward"] = {"first": rewards[0], "last": rewards[-1], "points": len(rewards)}
    return out


def _movement(curve: dict) -> str:
    parts = []
    for key in ("loss", "reward"):
        if key in curve:
            parts.append(f"{key} {curve[key]['first']:.4f} → {curve[key]['last']:.4f}")
    return ", ".join(parts)


def _train(client: Client, run: Run, out: Console, *, label: str, method: str, dataset_id: str,
           hyperparameters: dict, reward_function_id: str | None = None) -> TrainingJob:
    job = client.training_jobs.create(MODEL, dataset_id, method=method, output_name=f"quickstart-{method}",
                                      reward_function_id=reward_function_id, hyperparameters=hyperparameters)
    steps = hyperparameters["max_steps"]
    out.print(f"\n[bold]{label}[/bold]: {job.id} ({steps} step{'s' * (steps != 1)} on {job.base_model})")
    final = follow_job(client, job, out=out)
    out.print(job_summary(final))
    run.jobs[method] = final
    if final.status != "completed":
        raise errors.TuneyardError(f"the {method.upper()} job {final.id} {final.status}: "
                                   f"{final.error_message or 'see `tuneyard jobs logs ' + final.id + '`'}")
    run.curves[method] = _curve(client, final.id)
    if run.curves[method]:
        out.print(f"  {_movement(run.curves[method])}")
    return final


def _deployments_available(client: Client) -> bool:
    try:
        client.deployments.list(limit=1)
    except errors.NotFound:  # a list never 404s: the server has no deployments API
        return False
    return True


def _deploy_and_ask(client: Client, run: Run, job: TrainingJob, out: Console, *, keep: bool) -> None:
    if not _deployments_available(client):
        run.deployment_skipped = "this server has no deployments API (/v1/deployments)"
        out.print(f"\n[yellow]Skipping deploy and chat:[/yellow] {run.deployment_skipped}.")
        return
    out.print(f"\n[bold]Deploy[/bold] {job.id} ({job.output_name})")
    dep = client.deployments.create(job.id, f"quickstart-{job.id[-6:]}")
    dep = follow_deployment(client, dep, out=out)
    run.deployment = dep.to_dict()
    if dep.status != "serving":
        raise errors.TuneyardError(f"deployment {dep.id} {dep.status}: {dep.error or 'see the server log'}")
    out.print(f"[green]✓[/green] {dep.id} is serving")
    run.question = QUESTION
    out.print(f"\n[bold]Ask it[/bold]: {QUESTION}")
    out.print("[bold magenta]model>[/bold magenta] ", end="")
    run.answer = stream_answer(client.deployments.stream_text(
        dep.id, QUESTION, model=dep.name, max_tokens=32, temperature=0), out=out)
    if not keep:
        stopped = client.deployments.stop(dep.id)
        run.deployment = client.deployments.get(dep.id).to_dict()
        out.print(f"Stopped {stopped.id} (so it stops costing); redeploy with `tuneyard deploy {job.id}`")


def _costs(client: Client, run: Run) -> None:
    """Each step's cost: the ledger's charges for our jobs/deployment, else their own cost fields."""
    ours = {j.id: f"{m.upper()} training" for m, j in run.jobs.items()}
    if run.deployment:
        ours[run.deployment["id"]] = "deployment"
    charged: dict[str, float] = {}
    recent = client.billing.transactions(limit=100).auto_paging_iter()
    for txn in itertools.islice(recent, 500):
        if txn.reference in ours and txn.amount_usd < 0:
            charged[txn.reference] = charged.get(txn.reference, 0.0) - txn.amount_usd
    for ref, what in ours.items():
        if ref in charged:
            cost, source = charged[ref], "ledger"
        elif ref == (run.deployment or {}).get("id"):
            cost, source = (run.deployment or {}).get("total_cost_usd"), "deployment"
        else:
            job = next(j for j in run.jobs.values() if j.id == ref)
            cost, source = client.training_jobs.get(job.id).cost_usd, "job"
        run.costs.append({"step": what, "id": ref, "cost_usd": cost, "from": source})
    run.balance_after = client.billing.balance().balance_usd


def _where(run: Run, out: Console) -> None:
    out.print("\n[bold]Where everything is[/bold]")
    lines = [("server", run.url + ("  (embedded; stopped when the quickstart ends)" if run.embedded else ""))]
    if run.embedded:
        d = run.embedded.data_dir
        lines += [("data dir", str(d)), ("database", str(d / "tuneyard.db")), ("files", str(d / "blobs")),
                  ("API key", str(run.embedded.key_file)), ("server log", str(run.embedded.log_path))]
    lines += [("datasets", ", ".join(f"{k}: {v}" for k, v in run.datasets.items())),
              ("reward function", run.reward_function_id or "-")]
    for method, job in run.jobs.items():
        lines.append((f"{method} model", f"{job.output_name} ({job.id}) → `tuneyard jobs download {job.id}`"))
    if run.deployment:
        lines.append(("deployment", f"{run.deployment['id']} ({run.deployment['status']})"))
    for key, value in lines:
        out.print(f"  {key:<16} {escape(value)}")
    if run.embedded:
        out.print(f"\nTo keep working with it: `TUNEYARD_DATA_DIR={run.embedded.data_dir} tuneyard serve`, then "
                  f"`tuneyard login --url http://127.0.0.1:8000 --api-key $(cat {run.embedded.key_file})`.",
                  soft_wrap=True)


def _summary_json(run: Run) -> dict:
    return {
        "url": run.url, "embedded": bool(run.embedded),
        "data_dir": str(run.embedded.data_dir) if run.embedded else None,
        "datasets": run.datasets, "reward_function_id": run.reward_function_id,
        "jobs": {m: j.to_dict() for m, j in run.jobs.items()}, "curves": run.curves,
        "deployment": run.deployment, "deployment_skipped": run.deployment_skipped,
        "question": run.question, "answer": run.answer, "costs": run.costs,
        "balance_before_usd": run.balance_before, "balance_after_usd": run.balance_after,
    }


def _connect(url: str | None, embedded: bool, data_dir: Path | None,
             out: Console) -> tuple[Client, EmbeddedServer | None]:
    use_configured = not embedded and (url or state.url or state.api_key or config.has_login())
    if use_configured:
        client = Client(url or state.url, state.api_key)
        try:
            client.health()
        except errors.ConnectionFailed:
            client.close()
            fail(f"no tuneyard server answers at {client.url} (start one with `tuneyard serve`, "
                 "or run `tuneyard quickstart --embedded`)", 3)
        out.print(f"Using the tuneyard server at {client.url}")
        return client, None
    server = EmbeddedServer(data_dir or default_data_dir())
    out.print(f"Starting an embedded tuneyard server (data in {server.data_dir})…")
    server.start()
    out.print(f"Server up at {server.url}")
    return Client(server.url, server.api_key), server


@api_command
def quickstart(
    steps: int = typer.Option(20, "--steps", min=1, help="Training steps for each of the SFT and GRPO jobs."),
    url: str = typer.Option(None, "--url", help="Use this running server instead of an embedded one."),
    embedded: bool = typer.Option(False, "--embedded", help="Start an embedded server even when logged in."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Embedded server's data dir "
                                                          "(default: TUNEYARD_DATA_DIR or ~/.local/share/tuneyard)."),
    deploy: bool = typer.Option(True, "--deploy/--no-deploy", help="Deploy the trained model and ask it a question."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Leave the server and deployment running "
                                                                     "at the end (Ctrl-C stops an embedded one)."),
    json_out: bool = typer.Option(False, "--json", help="Progress on stderr, a JSON summary on stdout."),
) -> None:
    """Train (SFT, then GRPO), deploy and chat with the bundled SmolLM2, end to end, in a few minutes."""
    out = err if json_out else console
    t0 = time.monotonic()
    client, server = _connect(url, embedded, data_dir, out)
    run = Run(url=client.url, embedded=server)
    try:
        with client:
            run.balance_before = client.billing.balance().balance_usd
            out.print("\n[bold]Upload[/bold] the example data")
            sft_ds = client.datasets.upload(bundled("quickstart_sft.jsonl"), name="quickstart-sft")
            grpo_ds = client.datasets.upload(bundled("quickstart_grpo.jsonl"), name="quickstart-grpo")
            rf = client.reward_functions.upload(bundled("quickstart_reward.py"), name="quickstart-sum-checker")
            run.datasets = {"sft": sft_ds.id, "grpo": grpo_ds.id}
            run.reward_function_id = rf.id
            out.print(f"  {sft_ds.id}  {sft_ds.num_rows} chat rows (SFT)\n  {grpo_ds.id}  {grpo_ds.num_rows} "
                      f"prompts with answers (GRPO)\n  {rf.id}  reward: 1.0 for the right sum, 0.2 for a wrong "
                      "number, 0 for none")
            _train(client, run, out, label="1. SFT", method="sft", dataset_id=sft_ds.id,
                   hyperparameters=sft_hyperparameters(steps))
            grpo = _train(client, run, out, label="2. GRPO", method="grpo", dataset_id=grpo_ds.id,
                          hyperparameters=grpo_hyperparameters(steps), reward_function_id=rf.id)
            if deploy:
                _deploy_and_ask(client, run, grpo, out, keep=keep_running)
            _costs(client, run)
            out.print("\n[bold]What it cost[/bold]")
            print_table(run.costs, [("step", "step"), ("id", "id"), ("cost_usd", "cost $"), ("from", "from")],
                        empty="nothing was charged", out=out)
            if run.balance_before is not None and run.balance_after is not None:  # cents would hide a CPU run's cost
                out.print(f"  balance ${float(run.balance_before):,.6f} → ${float(run.balance_after):,.6f}")
            _where(run, out)
            out.print(f"\nQuickstart finished in {time.monotonic() - t0:.0f}s.")
            if json_out:
                print_json(_summary_json(run))
            if keep_running and server is not None:
                out.print(f"The server keeps running at {server.url} (key in {server.key_file}); Ctrl-C stops it.")
                server.wait()
    finally:
        if server is not None:
            server.stop()


def register(app: typer.Typer) -> None:
    app.command()(quickstart)

