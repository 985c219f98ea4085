"""``tuneyard jobs``: create (optionally waiting with a progress bar), list, get, cancel, logs, events, download."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tuneyard.cli.common import (
    JSON_OPTION,
    api_command,
    console,
    fail,
    get_client,
    parse_kv,
    print_fields,
    print_json,
    print_page,
)
from tuneyard.cli.progress import follow_job, job_summary
from tuneyard.client import Client

jobs_app = typer.Typer(help="Training jobs: SFT, DPO and GRPO.", no_args_is_help=True)

BUNDLED_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
JOB_COLUMNS = [("id", "id"), ("status", "status"), ("method", "method"), ("base_model", "base model"),
               ("current_step", "step"), ("total_steps", "of"), ("current_loss", "loss"), ("cost_usd", "cost $"),
               ("created_at", "created")]
JOB_FIELDS = ["id", "status", "method", "base_model", "dataset_id", "reward_function_id", "output_name",
              "hyperparameters", "gpu_requested", "gpu", "current_step", "total_steps", "current_loss",
              "duration_seconds", "cost_usd", "error", "created_at", "started_at", "completed_at", "download_url"]


def _dataset_ref(client: Client, ref: str) -> str:
    """A dataset id, or a local .jsonl path that is uploaded first."""
    path = Path(ref).expanduser()
    if not ref.startswith("ds_") and path.is_file():
        ds = client.datasets.upload(path)
        console.print(f"Uploaded {path.name} as {ds.id} ({ds.num_rows} rows, {ds.format})")
        return ds.id
    return ref


def _reward_ref(client: Client, ref: str | None) -> str | None:
    """A reward function id, or a local .py path that is uploaded first."""
    if ref is None:
        return None
    path = Path(ref).expanduser()
    if not ref.startswith("rf_") and path.is_file():
        rf = client.reward_functions.upload(path)
        console.print(f"Uploaded {path.name} as {rf.id}")
        return rf.id
    return ref


@jobs_app.command("create")
@api_command
def jobs_create(
    dataset: str = typer.Option(..., "--dataset", "-d", help="A dataset id, or a .jsonl file to upload."),
    method: str = typer.Option("sft", "--method", help="sft, dpo or grpo."),
    model: str = typer.Option(BUNDLED_MODEL, "--model", "-m", help="Base model (HF id or local folder)."),
    reward: str = typer.Option(None, "--reward", "-r", help="GRPO: a reward function id, or a .py file to upload."),
    output_name: str = typer.Option(None, "--output-name", "-o", help="Name of the trained model."),
    steps: int = typer.Option(None, "--steps", help="Shorthand for --hp max_steps=N."),
    learning_rate: float = typer.Option(None, "--lr", help="Shorthand for --hp learning_rate=X."),
    hp: list[str] = typer.Option(None, "--hp", help="A hyperparameter as key=value; repeatable."),
    gpu_type: str = typer.Option(None, "--gpu-type", help="e.g. A100-80GB; left out = whatever is here."),
    gpu_count: int = typer.Option(1, "--gpu-count"),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job with a progress bar until it ends."),
    logs: bool = typer.Option(False, "--logs", help="With --wait: stream the runner's log lines too."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a training job (uploading a local dataset or reward file first if given a path)."""
    hyperparameters = parse_kv(hp, "--hp")
    if steps is not None:
        hyperparameters["max_steps"] = steps
    if learning_rate is not None:
        hyperparameters["learning_rate"] = learning_rate
    with get_client() as client:
        dataset_id = _dataset_ref(client, dataset)
        reward_id = _reward_ref(client, reward)
        job = client.training_jobs.create(model, dataset_id, method=method, reward_function_id=reward_id,
                                          output_name=output_name, hyperparameters=hyperparameters,
                                          gpu_type=gpu_type, gpu_count=gpu_count if gpu_type else None)
        if not wait:
            if json_out:
                print_json(job)
            else:
                console.print(f"Created {job.id} ({job.method} on {job.base_model}): {job.status}\n"
                              f"Follow it with `tuneyard jobs logs -f {job.id}`")
            return
        if json_out:
            print_json(client.training_jobs.wait(job.id))
            return
        console.print(f"Created {job.id} ({job.method} on {job.base_model})")
        final = follow_job(client, job, logs=logs)
    console.print(job_summary(final))
    if final.status != "completed":
        raise typer.Exit(1)


@jobs_app.command("list")
@api_command
def jobs_list(status: str = typer.Option(None, "--status"), method: str = typer.Option(None, "--method"),
              limit: int = typer.Option(20, "--limit"), after: str = typer.Option(None, "--after"),
              json_out: bool = JSON_OPTION) -> None:
    """List training jobs, newest first."""
    with get_client() as client:
        page = client.training_jobs.list(status=status, method=method, limit=limit, after=after)
    print_page(page, JOB_COLUMNS, json_out, empty="no training jobs yet: `tuneyard jobs create --dataset FILE`",
               what="jobs")


@jobs_app.command("get")
@api_command
def jobs_get(job_id: str, json_out: bool = JSON_OPTION) -> None:
    """Show a training job."""
    with get_client() as client:
        job = client.training_jobs.get(job_id)
    if json_out:
        print_json(job)
    else:
        print_fields(job, JOB_FIELDS)


@jobs_app.command("wait")
@api_command
def jobs_wait(job_id: str, timeout: float = typer.Option(None, "--timeout", help="Give up after SECONDS."),
              json_out: bool = JSON_OPTION) -> None:
    """Wait for a job to end (progress bar); exit 1 unless it completed."""
    with get_client() as client:
        if json_out:
            final = client.training_jobs.wait(job_id, timeout=timeout)
            print_json(final)
        else:
            final = follow_job(client, client.training_jobs.get(job_id), timeout=timeout)
            console.print(job_summary(final))
    if final.status != "completed":
        raise typer.Exit(1)


@jobs_app.command("cancel")
@api_command
def jobs_cancel(job_id: str, json_out: bool = JSON_OPTION) -> None:
    """Cancel a job (a running one stops after its current step and keeps a checkpoint)."""
    with get_client() as client:
        job = client.training_jobs.cancel(job_id)
    if json_out:
        print_json(job)
    else:
        console.print(f"{job.id}: {job.status}" + (" (cancel requested)" if job.status not in
                                                   ("cancelled", "completed", "failed") else ""))


@jobs_app.command("logs")
@api_command
def jobs_logs(job_id: str, follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the job ends."),
              json_out: bool = JSON_OPTION) -> None:
    """Print a job's log; with -f follow it live, with a progress bar of steps, loss and reward."""
    with get_client() as client:
        if not follow:
            lines = client.training_jobs.logs(job_id)
            if json_out:
                print_json({"job_id": job_id, "lines": lines})
            else:
                for line in lines:
                    console.print(line, markup=False, soft_wrap=True)
                if not lines:
                    console.print("[dim]no log lines yet[/dim]")
            return
        if json_out:
            for line in client.training_jobs.stream_logs(job_id):
                print(json.dumps({"job_id": job_id, "line": line}), flush=True)
            return
        job = client.training_jobs.get(job_id)
        if job.done:
            for line in client.training_jobs.logs(job_id):
                console.print(line, markup=False, soft_wrap=True)
            final = job
        else:
            final = follow_job(client, job, logs=True)
    console.print(job_summary(final))
    if final.status != "completed":
        raise typer.Exit(1)


@jobs_app.command("events")
@api_command
def jobs_events(job_id: str, follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the job ends."),
                after: str = typer.Option(None, "--after", help="Only events after this id or sequence number."),
                limit: int = typer.Option(100, "--limit"), json_out: bool = JSON_OPTION) -> None:
    """A job's lifecycle events (status changes, metrics, checkpoints)."""
    with get_client() as client:
        if follow:
            for event in client.training_jobs.stream_events(job_id, after=after):
                if json_out:
                    print(json.dumps(event.to_dict()), flush=True)
                else:
                    console.print(f"{event.created_at}  {event.type:<18} {event.message or ''}", markup=False)
            return
        page = client.training_jobs.events(job_id, after=after, limit=limit)
    if json_out:
        print_json(page.to_dict())
        return
    for event in page:
        console.print(f"{event.created_at}  {event.type:<18} {event.message or ''}", markup=False)
    if page.has_more:
        console.print(f"[dim]more events: --after {page.data[-1].seq}[/dim]")


@jobs_app.command("download")
@api_command
def jobs_download(job_id: str, dest: Path = typer.Option(Path("."), "--dest", "-o", help="Target folder."),
                  json_out: bool = JSON_OPTION) -> None:
    """Download the final checkpoint (LoRA adapter or full weights) to DEST/<job id>/."""
    files: list[dict] = []
    with get_client() as client:
        job = client.training_jobs.get(job_id)
        if job.status != "completed":
            fail(f"{job.id} is {job.status}: only a completed job has a model to download")
        folder = client.training_jobs.download(
            job_id, dest, on_file=lambda path, size: files.append({"path": path, "bytes": size}))
    if json_out:
        print_json({"job_id": job_id, "path": str(folder), "files": files})
        return
    for f in files:
        console.print(f"  {f['path']}  ({f['bytes']:,} bytes)", markup=False)
    console.print(f"Saved {len(files)} files to {folder}")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
