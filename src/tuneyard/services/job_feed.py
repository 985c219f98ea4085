"""Reading a job's log lines and events for the API (including the live SSE streams)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.store.models import JobEvent, JobLogLine, TrainingJob


def log_lines(session: Session, job_id: str, after_line: int = 0, limit: int = 500) -> list[JobLogLine]:
    return list(session.execute(
        select(JobLogLine).where(JobLogLine.job_id == job_id, JobLogLine.line_no > after_line)
        .order_by(JobLogLine.line_no).limit(limit)).scalars())


def events(session: Session, job_id: str, after_seq: int = 0, limit: int = 100) -> list[JobEvent]:
    return list(session.execute(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq_in_job > after_seq)
        .order_by(JobEvent.seq_in_job).limit(limit)).scalars())


def event_seq(session: Session, job_id: str, cursor: str | None) -> int:
    """``after`` may be an event id or its sequence number."""
    if not cursor:
        return 0
    if cursor.isdigit():
        return int(cursor)
    seq = session.execute(select(JobEvent.seq_in_job).where(JobEvent.job_id == job_id, JobEvent.id == cursor)).scalar()
    return seq or 0


def status(session: Session, job_id: str) -> str:
    return session.execute(select(TrainingJob.status).where(TrainingJob.id == job_id)).scalar_one()
