"""``tuneyard deploy`` and ``tuneyard deployments``: serve a model, chat with it (streamed), stop it."""

from __future__ import annotations

import typer
from rich.markup import escape

from tuneyard.cli.common import (
    JSON_OPTION,
    api_command,
    console,
    err,
    fail,
    get_client,
    print_fields,
    print_json,
    print_page,
)
from tuneyard.cli.progress import follow_deployment, stream_answer
from tuneyard.client import Client, Deployment, completion_text

deployments_app = typer.Typer(help="Deployments: OpenAI-compatible endpoints for base or trained models.",
                              no_args_is_help=True)

DEPLOYMENT_COLUMNS = [("id", "id"), ("name", "name"), ("status", "status"), ("model", "model"),
                      ("source", "source"), ("total_requests", "requests"), ("created_at", "created")]
DEPLOYMENT_FIELDS = ["id", "name", "status", "model", "source", "engine", "endpoint_url", "gpu", "provider",
                     "cost_per_hour_usd", "total_cost_usd", "total_requests", "error", "created_at"]


def announce(dep: Deployment) -> None:
    if dep.status == "serving":
        console.print(f"[green]✓[/green] {dep.id} is serving {dep.model}")
        if dep.endpoint_url:
            console.print(f"  endpoint: {dep.endpoint_url}")
        console.print(f"  chat:     tuneyard deployments chat {dep.id}")
    elif dep.status == "failed":
        console.print(f"[red]✗[/red] {dep.id} failed: {escape(str(dep.error or 'unknown error'))}")
    else:
        console.print(f"{dep.id}: {dep.status}")


@api_command
def deploy(model: str = typer.Argument(..., help="A training job id (job_…) or a model name."),
           name: str = typer.Option(None, "--name", "-n", help="Deployment name (the default `model` in chat)."),
           source: str = typer.Option(None, "--source", help="training_job or huggingface (guessed from MODEL)."),
           gpu_type: str = typer.Option(None, "--gpu-type"), gpu_count: int = typer.Option(1, "--gpu-count"),
           wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until it serves (spinner)."),
           json_out: bool = JSON_OPTION) -> None:
    """Deploy a trained model (or a base model) behind an OpenAI-compatible endpoint."""
    with get_client() as client:
        dep = client.deployments.create(model, name, source=source, gpu_type=gpu_type,
                                        gpu_count=gpu_count if gpu_type else None)
        if wait:
            if json_out:
                dep = client.deployments.wait(dep.id, timeout=900)
            else:
                console.print(f"Created {dep.id} ({dep.name})")
                dep = follow_deployment(client, dep)
    if json_out:
        print_json(dep)
    elif wait:
        announce(dep)
    else:
        console.print(f"Created {dep.id} ({dep.name}): {dep.status}")
    if dep.status == "failed":
        raise typer.Exit(1)


@deployments_app.command("list")
@api_command
def deployments_list(status: str = typer.Option(None, "--status"), limit: int = typer.Option(20, "--limit"),
                     after: str = typer.Option(None, "--after"), json_out: bool = JSON_OPTION) -> None:
    """List deployments, newest first."""
    with get_client() as client:
        page = client.deployments.list(status=status, limit=limit, after=after)
    print_page(page, DEPLOYMENT_COLUMNS, json_out, empty="no deployments yet: `tuneyard deploy JOB_ID`",
               what="deployments")


@deployments_app.command("get")
@api_command
def deployments_get(deployment_id: str, json_out: bool = JSON_OPTION) -> None:
    """Show a deployment."""
    with get_client() as client:
        dep = client.deployments.get(deployment_id)
    print_json(dep) if json_out else print_fields(dep, DEPLOYMENT_FIELDS)


@deployments_app.command("stop")
@api_command
def deployments_stop(deployment_id: str, json_out: bool = JSON_OPTION) -> None:
    """Stop a deployment (its worker exits; billing for it stops)."""
    with get_client() as client:
        dep = client.deployments.stop(deployment_id)
    print_json(dep) if json_out else console.print(f"{dep.id}: {dep.status}")


@deployments_app.command("metrics")
@api_command
def deployments_metrics(deployment_id: str, json_out: bool = JSON_OPTION) -> None:
    """Aggregate metrics: requests, latency, tokens."""
    with get_client() as client:
        body = client.deployments.metrics(deployment_id)
    print_json(body) if json_out else print_fields(body)


@deployments_app.command("requests")
@api_command
def deployments_requests(deployment_id: str, limit: int = typer.Option(50, "--limit"),
                         after: str = typer.Option(None, "--after"), json_out: bool = JSON_OPTION) -> None:
    """Per-request logs, newest first."""
    with get_client() as client:
        page = client.deployments.requests(deployment_id, limit=limit, after=after)
    columns = [("id", "id"), ("status_code", "status"), ("latency_ms", "latency ms"),
               ("prompt_tokens", "prompt tok"), ("completion_tokens", "completion tok"), ("created_at", "created")]
    print_page(page, columns, json_out, empty="no requests yet", what="requests")


def _chat_once(client: Client, dep: Deployment, messages: list[dict], *, stream: bool, max_tokens: int | None,
               temperature: float | None, json_out: bool) -> str:
    kwargs = {"model": dep.name, "max_tokens": max_tokens, "temperature": temperature}
    if json_out:
        completion = client.deployments.chat(dep.id, messages, **kwargs)
        print_json(completion)
        return completion_text(completion)
    if stream:
        return stream_answer(client.deployments.stream_text(dep.id, messages, **kwargs))
    text = completion_text(client.deployments.chat(dep.id, messages, **kwargs))
    console.print(text, markup=False, highlight=False)
    return text


@deployments_app.command("chat")
@api_command
def deployments_chat(
    deployment_id: str,
    message: str = typer.Argument(None, help="Ask once and exit; left out = an interactive chat."),
    system: str = typer.Option(None, "--system", help="A system prompt."),
    max_tokens: int = typer.Option(256, "--max-tokens"),
    temperature: float = typer.Option(None, "--temperature"),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="Print tokens as they are generated."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Chat with a deployment: one message, or an interactive loop (/reset clears history, /exit quits)."""
    with get_client() as client:
        dep = client.deployments.get(deployment_id)
        if dep.status != "serving":
            fail(f"{dep.id} is {dep.status}, not serving" +
                 (" yet: wait for it with `tuneyard deployments get`" if dep.status not in ("failed", "stopped")
                  else ""))
        history: list[dict] = [{"role": "system", "content": system}] if system else []
        if message is not None:
            _chat_once(client, dep, history + [{"role": "user", "content": message}], stream=stream,
                       max_tokens=max_tokens, temperature=temperature, json_out=json_out)
            return
        if json_out:
            fail("--json needs a MESSAGE (the interactive chat prints text)")
        err.print(f"Chatting with {dep.name} ({dep.model}). /reset clears the history, /exit or Ctrl-D quits.")
        while True:
            try:
                line = console.input("[bold cyan]you>[/bold cyan] ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return
            if text == "/reset":
                history = history[:1] if system else []
                err.print("history cleared")
                continue
            history.append({"role": "user", "content": text})
            console.print("[bold magenta]model>[/bold magenta] ", end="")
            answer = _chat_once(client, dep, history, stream=stream, max_tokens=max_tokens,
                                temperature=temperature, json_out=False)
            history.append({"role": "assistant", "content": answer})


def register(app: typer.Typer) -> None:
    app.command()(deploy)
    app.add_typer(deployments_app, name="deployments")
