"""Billing of training jobs: the estimate held at creation, metering from ``provisioning`` to the
end, and stopping a job whose organization runs out of credit.

The state machine calls ``on_transition`` for every status change, so however a job ends
(completed, failed, cancelled by the user, by a heartbeat timeout or for lack of credit, or
requeued after a lost worker) its time is settled in the same transaction as the status.
A job cancelled while still queued was never provisioned and costs nothing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.services import billing, costs, metering
from tuneyard.services.job_states import TERMINAL, add_event, transition
from tuneyard.settings import Settings
from tuneyard.store.models import TrainingJob

KIND = "training_job"
RUNNING = ("provisioning", "running")


def estimate(settings: Settings, job: TrainingJob, num_rows: int) -> Decimal:
    seconds = costs.job_seconds(settings, job.method, job.hyperparameters or {}, num_rows, job.gpu_type)
    return costs.q(costs.price(settings, job.provider, job.gpu_type, job.gpu_count).cost(seconds))


def reserve(session: Session, settings: Settings, job: TrainingJob, num_rows: int) -> Decimal:
    """Hold the job's estimate; 402 when the organization's available credit does not cover it.
    The caller holds the organization's lock (``billing.lock_org``) since before it counted."""
    amount = estimate(settings, job, num_rows)
    billing.ensure_available(session, job.org_id, amount, f"training job {job.id}")
    billing.hold(session, job.org_id, KIND, job.id, amount)
    job.estimated_cost_usd = float(amount)
    return amount


def _meterable(job: TrainingJob) -> metering.Meterable:
    return metering.Meterable(kind=KIND, id=job.id, org_id=job.org_id, gpu_type=job.gpu_type,
                              gpu_count=job.gpu_count, provider=job.provider, since=job.provisioning_at,
                              status=job.status, label=f"{job.method.upper()} job {job.id}")


def on_transition(session: Session, job: TrainingJob, previous: str, status: str, now: datetime) -> None:
    """Settle the run that just ended (terminal, or requeued) and release the hold at the end."""
    total = None
    if previous in RUNNING and status not in RUNNING and job.provisioning_at is not None:
        total = metering.settle(session, _meterable(job), now)
    if status in TERMINAL and billing.release(session, KIND, job.id, now):
        total = metering.total_charged(session, KIND, job.id) if total is None else total
        add_event(session, job.id, "billing.settled", f"Job cost {billing.usd(total)} "
                  f"({job.gpu_type} x{job.gpu_count} on {job.provider})",
                  data={"cost_usd": float(total), "estimated_cost_usd": job.estimated_cost_usd})


class TrainingJobSource:
    kind = KIND

    def running(self, session: Session, org_id: str | None = None) -> list[metering.Meterable]:
        stmt = select(TrainingJob).where(TrainingJob.status.in_(RUNNING), TrainingJob.provisioning_at.is_not(None))
        if org_id:
            stmt = stmt.where(TrainingJob.org_id == org_id)
        return [_meterable(j) for j in session.execute(stmt.order_by(TrainingJob.seq)).scalars()]

    def lock(self, session: Session, ref: str) -> metering.Meterable | None:
        job = session.execute(select(TrainingJob).where(TrainingJob.id == ref, TrainingJob.status.in_(RUNNING))
                              .with_for_update(skip_locked=True)).scalar()
        return _meterable(job) if job is not None and job.provisioning_at is not None else None

    def record_cost(self, session: Session, ref: str, total_usd: Decimal) -> None:
        job = session.execute(select(TrainingJob).where(TrainingJob.id == ref)).scalar_one()
        job.cost_usd = float(total_usd)

    def stop_for_credit(self, session: Session, ref: str, message: str) -> None:
        job = session.execute(select(TrainingJob).where(TrainingJob.id == ref)).scalar_one()
        if job.cancel_requested or job.status in TERMINAL:
            return
        job.cancel_requested = True
        add_event(session, job.id, "billing.credit_exhausted", message, level="warning",
                  data={"balance_usd": float(billing.balance(session, job.org_id))})

    def tokens(self, session: Session, ref: str, start: datetime, end: datetime) -> int:
        return 0


def cancel_unfunded_queued(session: Session) -> list[str]:
    """Queued jobs of organizations with no credit left are cancelled before they start."""
    cancelled = []
    queued = session.execute(select(TrainingJob).where(TrainingJob.status == "queued")
                             .with_for_update(skip_locked=True)).scalars().all()
    broke: dict[str, bool] = {}
    for job in queued:
        if job.org_id not in broke:
            broke[job.org_id] = billing.balance(session, job.org_id) <= 0
        if broke[job.org_id]:
            transition(session, job, "cancelled", "Job cancelled before it started: the organization has no credit")
            cancelled.append(job.id)
    return cancelled


metering.register(TrainingJobSource())
