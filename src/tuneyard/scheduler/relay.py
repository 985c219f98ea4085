"""Relaying one run: the runner's JSON lines become log lines, events, progress on the job row,
checkpoints in blob storage, and finally a terminal status.

Each line is applied in its own short transaction together with the stream offset, so a relay
that dies half-way is resumed by another without losing or repeating anything of substance.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.context import Context
from tuneyard.ids import new_id
from tuneyard.scheduler.executor import Executor, Handle
from tuneyard.scheduler.workspace import checkpoints_prefix, upload_checkpoint
from tuneyard.services.job_states import TERMINAL, add_event, add_log_lines, transition
from tuneyard.store.models import Checkpoint, TrainingJob
from tuneyard.training.staging import checkpoint_label

log = logging.getLogger("tuneyard.scheduler")
MAX_ATTEMPTS = 3
_METRIC_KEYS = ("step", "total_steps", "loss", "learning_rate", "epoch", "tokens_per_second", "reward_mean",
                "reward_std", "grad_norm", "kl", "num_tokens")


class LostLease(Exception):
    """Another worker owns the job now; this relay must stop."""


class Relay:
    def __init__(self, ctx: Context, executor: Executor, worker_id: str, job_id: str, handle: Handle):
        self.ctx, self.executor, self.worker_id = ctx, executor, worker_id
        self.job_id, self.handle = job_id, handle
        self.cancel_sent = False
        self.final: dict | None = None  # the runner's terminal status line
        # Remote executors interleave the runner's stderr with its protocol lines: kept for a crash report.
        self.stderr: deque[str] = deque(maxlen=15)

    def run(self) -> None:
        try:
            for line in self.executor.stream(self.handle):
                self.handle = {**self.handle, "offset": line.pop("_offset", self.handle.get("offset", 0))}
                with self.ctx.db.session() as s:
                    job = self._owned_job(s)
                    if job.status in TERMINAL:
                        return
                    self._apply(s, job, line)
                    job.executor_handle = self.handle
                    if job.cancel_requested and not self.cancel_sent:
                        self.executor.cancel(self.handle)
                        self.cancel_sent = True
        except LostLease:
            log.info("job %s is owned by another worker now; relay stops", self.job_id)
        except Exception:
            log.exception("relay for job %s failed", self.job_id)
            with self.ctx.db.session() as s:
                job = s.execute(select(TrainingJob).where(TrainingJob.id == self.job_id).with_for_update()).scalar_one()
                if job.status not in TERMINAL:
                    transition(s, job, "failed", "Job failed: internal error while relaying progress",
                               error=("internal_error", "tuneyard lost track of the run; see server logs"))

    def _owned_job(self, s: Session) -> TrainingJob:
        job = s.execute(select(TrainingJob).where(TrainingJob.id == self.job_id).with_for_update()).scalar_one()
        if job.worker_id != self.worker_id:
            raise LostLease(self.job_id)
        return job

    def _apply(self, s: Session, job: TrainingJob, line: dict) -> None:
        kind = line.get("type")
        if kind == "stderr":
            self.stderr.append(str(line.get("message", "")))
        elif kind == "log":
            add_log_lines(s, job.id, [str(line.get("message", ""))])
        elif kind == "metrics":
            self._metrics(s, job, line)
        elif kind == "checkpoint":
            self._checkpoint(s, job, line)
        elif kind == "status":
            status = line.get("status")
            if status == "running" and job.status == "provisioning":
                job.total_steps = line.get("total_steps") or job.total_steps
                transition(s, job, "running", f"Training started ({job.total_steps or '?'} steps)",
                           data={"total_steps": job.total_steps})
            elif status in TERMINAL:
                self.final = line
        elif kind == "exit":
            self._finish(s, job, line.get("code"))

    def _metrics(self, s: Session, job: TrainingJob, line: dict) -> None:
        data = {k: line[k] for k in _METRIC_KEYS if line.get(k) is not None}
        data.update({k: v for k, v in line.items() if k.startswith("rewards/")})
        if "step" in data:
            job.current_step = int(data["step"])
        if data.get("total_steps"):
            job.total_steps = int(data["total_steps"])
        if data.get("loss") is not None:
            job.current_loss = float(data["loss"])
        if data.get("num_tokens"):
            job.trained_tokens = int(data["num_tokens"])
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in data.items()]
        add_event(s, job.id, "metrics", " ".join(parts), data=data)

    def _checkpoint(self, s: Session, job: TrainingJob, line: dict) -> None:
        step = int(line.get("step") or job.current_step or 0)
        final = bool(line.get("final"))
        label = checkpoint_label(step, final)
        if line.get("uploaded"):  # a remote runner published it to blob storage itself
            prefix, files, local_path = f"{checkpoints_prefix(job)}/{label}", list(line.get("files") or []), None
        else:
            local = Path(str(line.get("path", "")))
            if not local.is_dir():
                add_event(s, job.id, "checkpoint.missing",
                          f"Runner reported a checkpoint at {local} but it is not there", level="warning")
                return
            prefix, files = upload_checkpoint(self.ctx, job, local, label)
            local_path = str(local)
        ckpt = Checkpoint(id=new_id("checkpoint"), job_id=job.id, step=step, final=final, blob_prefix=prefix,
                          files=files, local_path=local_path, metrics={"loss": job.current_loss})
        s.add(ckpt)
        s.flush()
        add_event(s, job.id, "checkpoint.saved", f"Checkpoint saved at step {step}" + (" (final)" if final else ""),
                  data={"checkpoint_id": ckpt.id, "step": step, "final": final, "files": [f["path"] for f in files]})

    def _finish(self, s: Session, job: TrainingJob, exit_code: int | None) -> None:
        final = self.final or {}
        status = final.get("status")
        error = final.get("error") or {}
        if status == "completed":
            transition(s, job, "completed", "Job completed")
        elif status == "cancelled" or (job.cancel_requested and status is None):
            at_step = f" at step {job.current_step}" if job.current_step else ""
            transition(s, job, "cancelled", "Job cancelled" + at_step)
        elif status == "failed":
            transition(s, job, "failed", f"Job failed: {error.get('message', 'training error')}",
                       error=(error.get("code") or "training_error", error.get("message") or "training failed"))
        else:
            self._lost(s, job, exit_code)

    def _lost(self, s: Session, job: TrainingJob, exit_code: int | None) -> None:
        """The runner ended without a terminal status: resume from a checkpoint, or fail."""
        tail = _stderr_tail(self.handle) or [f"[stderr] {t}" for t in self.stderr]
        if tail:
            add_log_lines(s, job.id, tail)
        last = s.execute(select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(Checkpoint.step.desc())
                         ).scalars().first()
        reason = f"the training process exited unexpectedly (exit code {exit_code})" if exit_code is not None \
            else "the training process was lost (worker restart or crash)"
        if last is not None and last.local_path and job.attempt < MAX_ATTEMPTS:
            job.resume_from = last.id
            job.worker_id = job.executor_handle = None
            transition(s, job, "queued", f"Requeued to resume from step {last.step}: {reason}",
                       data={"resume_from": last.id, "attempt": job.attempt})
            return
        transition(s, job, "failed", f"Job failed: {reason}", error=("runner_lost", reason[0].upper() + reason[1:]))


def _stderr_tail(handle: Handle, lines: int = 15) -> list[str]:
    path = Path(handle.get("workdir", "")) / "runner.stderr.log"
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return []
    return [f"[stderr] {t}" for t in text[-lines:]]

