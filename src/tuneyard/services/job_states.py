"""The training-job state machine. Every status change goes through ``transition``; terminal
states are final, and every transition writes an event.

    queued -> provisioning -> running -> completed | failed | cancelled
    (any non-terminal) -> failed | cancelled;  provisioning | running -> queued (retry after a lost worker)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest
from tuneyard.ids import new_id
from tuneyard.store.models import JobEvent, JobLogLine, TrainingJob, utcnow

TERMINAL = frozenset({"completed", "failed", "cancelled"})
ACTIVE = ("queued", "provisioning", "running")
ALLOWED = {
    "queued": {"provisioning", "failed", "cancelled"},
    "provisioning": {"running", "queued", "completed", "failed", "cancelled"},
    "running": {"queued", "completed", "failed", "cancelled"},
}


def add_event(session: Session, job_id: str, type_: str, message: str, *, level: str = "info",
              data: dict[str, Any] | None = None) -> JobEvent:
    last = session.execute(select(func.max(JobEvent.seq_in_job)).where(JobEvent.job_id == job_id)).scalar()
    event = JobEvent(id=new_id("event"), job_id=job_id, seq_in_job=(last or 0) + 1, type=type_, level=level,
                     message=message, data=data)
    session.add(event)
    session.flush()
    return event


def add_log_lines(session: Session, job_id: str, lines: list[str]) -> None:
    last = session.execute(select(func.max(JobLogLine.line_no)).where(JobLogLine.job_id == job_id)).scalar() or 0
    now = utcnow()
    for i, text in enumerate(lines, start=1):
        session.add(JobLogLine(job_id=job_id, line_no=last + i, text=text, created_at=now))
    session.flush()


def transition(session: Session, job: TrainingJob, status: str, message: str | None = None, *,
               error: tuple[str, str] | None = None, data: dict[str, Any] | None = None) -> None:
    if job.status in TERMINAL:
        raise InvalidRequest(f"Job {job.id} is already {job.status}", code="job_terminal")
    if status not in ALLOWED[job.status]:
        raise InvalidRequest(f"Job {job.id} cannot go from {job.status} to {status}", code="invalid_transition")
    now = utcnow()
    previous, job.status, job.updated_at = job.status, status, now
    if status == "provisioning":
        job.provisioning_at = now
    elif status == "running" and job.started_at is None:
        job.started_at = now
    elif status in TERMINAL:
        job.completed_at = now
        job.lease_expires_at = None
    if error:
        job.error_code, job.error_message = error
    level = "error" if status == "failed" else "info"
    text = message or f"Job {status}"
    add_event(session, job.id, f"job.{status}", text, level=level,
              data={"from": previous, "to": status, **({"error": {"code": error[0], "message": error[1]}}
                                                         if error else {}), **(data or {})})
    add_log_lines(session, job.id, [f"[tuneyard] {text}"])
    from tuneyard.services import job_billing  # late: billing builds on this module

    job_billing.on_transition(session, job, previous, status, now)
