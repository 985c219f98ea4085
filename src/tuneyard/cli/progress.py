"""Live progress: a step bar with loss and reward for training jobs, a spinner while a deployment starts.

On a terminal these are rich live displays; when the output is a pipe or a file (CI, scripts) the
same information is printed as plain lines, one per step and per status change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tuneyard.cli.common import console, money
from tuneyard.client import Client, Deployment, JobProgress, TrainingJob, errors


def _metrics_text(p: JobProgress) -> str:
    parts = []
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4f}")
    if p.reward is not None:
        parts.append(f"reward {p.reward:.3f}")
    return "  ".join(parts)


class JobDisplay:
    """Turns ``JobProgress`` updates into a progress bar (terminal) or lines (pipe)."""

    def __init__(self, job: TrainingJob, out: Console = console):
        self.job = job
        self.out = out
        self.live = out.is_terminal
        self.last_status: str | None = None
        self.last_step: int | None = None
        self.progress: Progress | None = None
        self.task = None
        self.label = f"{job.id} ({job.method})"

    def __enter__(self) -> JobDisplay:
        if self.live:
            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("steps"), TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(),
                console=self.out, transient=False)
            self.progress.start()
            self.task = self.progress.add_task(f"{self.label} queued", total=None, metrics="")
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()

    def log(self, line: str) -> None:
        """A runner log line, printed above the bar."""
        if not line.strip():
            return
        (self.progress.console if self.progress else self.out).print(
            f"[dim]\\[log][/dim] {escape(line)}", soft_wrap=True, highlight=False)

    def update(self, p: JobProgress) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{self.label} {p.status}", total=p.total_steps,
                                 completed=p.step or 0, metrics=_metrics_text(p))
        else:
            if p.status != self.last_status:
                self.out.print(f"{self.job.id}: {p.status}")
            if p.step is not None and p.step != self.last_step:
                total = f"/{p.total_steps}" if p.total_steps else ""
                self.out.print(f"  step {p.step}{total}  {_metrics_text(p)}".rstrip())
        self.last_status = p.status
        self.last_step = p.step


def _pump_logs(client: Client, job_id: str, display: JobDisplay, stop: threading.Event) -> None:
    try:
        for line in client.training_jobs.stream_logs(job_id):
            if stop.is_set():
                return
            if line.startswith("[Job ") and line.endswith("]"):
                return
            display.log(line)
    except errors.TuneyardError:
        return  # the log stream is decoration; the status poll decides the outcome


def follow_job(client: Client, job: TrainingJob, *, logs: bool = False, timeout: float | None = None,
               out: Console = console) -> TrainingJob:
    """Show a job's progress until it ends; with ``logs`` its log lines stream above the bar."""
    stop = threading.Event()
    with JobDisplay(job, out) as display:
        thread = None
        if logs:
            thread = threading.Thread(target=_pump_logs, args=(client, job.id, display, stop), daemon=True)
            thread.start()
        try:
            final = client.training_jobs.wait(job.id, timeout=timeout, on_progress=display.update)
        finally:
            if thread is not None:
                thread.join(timeout=10)  # the stream ends with the job; let its last lines through
                stop.set()
    return final


def job_summary(job: TrainingJob) -> str:
    steps = f"{job.current_step}/{job.total_steps} steps" if job.total_steps else "no steps"
    loss = f", final loss {job.current_loss:.4f}" if job.current_loss is not None else ""
    took = f" in {job.duration_seconds:.0f}s" if job.duration_seconds else ""
    cost = f", cost {money(job.cost_usd)}" if job.cost_usd is not None else ""
    if job.status == "completed":
        return f"[green]✓[/green] {job.id} completed{took}: {steps}{loss}{cost}"
    if job.status == "failed":
        return f"[red]✗[/red] {job.id} failed: {escape(job.error_message or 'unknown error')}"
    return f"{job.id} {job.status} ({steps})"


def follow_deployment(client: Client, dep: Deployment, *, timeout: float | None = 900,
                      out: Console = console) -> Deployment:
    """A spinner (or status lines) until the deployment is serving, failed or stopped."""
    if not out.is_terminal:
        return client.deployments.wait(dep.id, timeout=timeout,
                                       on_status=lambda d: out.print(f"{d.id}: {d.status}"))
    with out.status(f"Starting {dep.id} ({dep.model}): {dep.status}…") as spinner:
        return client.deployments.wait(
            dep.id, timeout=timeout, on_status=lambda d: spinner.update(f"Starting {d.id} ({d.model}): {d.status}…"))


def stream_answer(pieces: Iterator[str], out: Console = console) -> str:
    """Print tokens as they arrive; return the whole answer."""
    text = []
    for piece in pieces:
        text.append(piece)
        out.file.write(piece)
        out.file.flush()
    out.file.write("\n")
    out.file.flush()
    return "".join(text)
