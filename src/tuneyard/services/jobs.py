"""Training jobs: validated before they are queued; cancelled, heart-beaten and listed here.

Running them is the scheduler's business (tuneyard.scheduler); this module only records intent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard import modelhub
from tuneyard.errors import InvalidRequest, NotFound, RateLimited
from tuneyard.ids import new_id
from tuneyard.services import billing, cluster, compute, datasets, hyperparameters, job_billing, rates, rewards
from tuneyard.services.dataset_formats import check_method
from tuneyard.services.job_states import ACTIVE, TERMINAL, add_event, add_log_lines, transition
from tuneyard.settings import Settings
from tuneyard.store.models import Checkpoint, TrainingJob, utcnow

METHODS = ("sft", "dpo", "grpo")


@dataclass
class JobRequest:
    base_model: str
    dataset_id: str
    method: str = "grpo"
    output_name: str | None = None
    reward_function_ids: list[str] = field(default_factory=list)
    reward_weights: list[float] | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    gpu: dict | None = None
    provider: str | None = None
    checkpoint_destination: dict | None = None
    requires_heartbeat: bool = False
    resume_from: str | None = None
    validation_dataset_id: str | None = None
    origin: str = "veri"
    suffix: str | None = None


def create(session: Session, settings: Settings, org_id: str, req: JobRequest) -> TrainingJob:
    method = (req.method or "grpo").lower()
    if method == "sft_text":
        method = "sft"
    if method not in METHODS:
        raise InvalidRequest(f"method must be one of {', '.join(METHODS)}", param="method")
    ds = datasets.get(session, org_id, req.dataset_id) if req.dataset_id else None
    if ds is None:
        raise InvalidRequest("dataset_id is required", param="dataset_id")
    problem = check_method(ds.format, method)
    if problem:
        raise InvalidRequest(problem, param="dataset_id", code="dataset_format_mismatch")
    if req.validation_dataset_id:
        datasets.get(session, org_id, req.validation_dataset_id)
    for i, rf_id in enumerate(req.reward_function_ids):
        try:
            rewards.get(session, org_id, rf_id)
        except NotFound:
            raise InvalidRequest(f"No reward function {rf_id!r}", param=f"reward_function_ids[{i}]") from None
    if method == "grpo" and not req.reward_function_ids:
        raise InvalidRequest("GRPO needs a reward function: set reward_function_id", param="reward_function_id",
                             code="reward_function_required")
    if req.reward_weights is not None and len(req.reward_weights) != len(req.reward_function_ids):
        raise InvalidRequest("reward_weights must have one weight per reward function", param="reward_weights")
    try:
        model = modelhub.resolve_model(req.base_model)
    except modelhub.ModelNotFound as exc:
        raise InvalidRequest(str(exc), param="base_model", code="model_not_found") from None
    hp = hyperparameters.normalize(req.hyperparameters)
    shape = cluster.resolve_shape(req.gpu, compute.inventory(settings))  # what the executor runs on
    provider = rates.choose_provider(settings, shape.type, req.provider)
    resume_from = None
    if req.resume_from:
        resume_from = _resolve_resume(session, org_id, req.resume_from)
    billing.lock_org(session, org_id)  # the count and the credit check below see every committed job
    active = session.execute(select(func.count()).select_from(TrainingJob).where(
        TrainingJob.org_id == org_id, TrainingJob.status.in_(ACTIVE))).scalar_one()
    if active >= settings.max_concurrent_jobs_per_org:
        raise RateLimited(f"Your organization already has {active} active jobs (limit "
                          f"{settings.max_concurrent_jobs_per_org}); wait for one to finish",
                          code="concurrent_job_limit", headers={"Retry-After": "30"})
    job_id = new_id("training_job")
    job = TrainingJob(
        id=job_id, org_id=org_id, status="queued", method=method, base_model=model.id,
        dataset_id=ds.id, validation_dataset_id=req.validation_dataset_id,
        reward_function_ids=list(req.reward_function_ids), reward_weights=req.reward_weights,
        output_name=req.output_name or f"{model.id.split('/')[-1]}-{method}-{job_id[-6:]}",
        hyperparameters=hp, gpu_type=shape.type, gpu_count=shape.count, provider=provider,
        checkpoint_destination=req.checkpoint_destination, requires_heartbeat=req.requires_heartbeat,
        resume_from=resume_from, origin=req.origin, suffix=req.suffix)
    session.add(job)
    session.flush()
    job_billing.reserve(session, settings, job, ds.num_rows)  # 402 (and nothing queued) past the credit
    add_event(session, job.id, "job.queued", "Job queued",
              data={"method": method, "base_model": model.id, "dataset_id": ds.id, "gpu": shape.as_json()})
    add_log_lines(session, job.id, [f"[tuneyard] Job queued: {method} on {model.id} with {ds.name} "
                                    f"({ds.num_rows} rows), {shape.type} x{shape.count}"])
    return job


def _resolve_resume(session: Session, org_id: str, ref: str) -> str:
    """``resume_from`` may be a checkpoint id or a job id (its newest checkpoint)."""
    ckpt = session.execute(select(Checkpoint).join(TrainingJob, Checkpoint.job_id == TrainingJob.id).where(
        TrainingJob.org_id == org_id, (Checkpoint.id == ref) | (Checkpoint.job_id == ref))
        .order_by(Checkpoint.step.desc())).scalars().first()
    if ckpt is None:
        raise InvalidRequest(f"No checkpoint or job with checkpoints {ref!r}", param="resume_from")
    return ckpt.id


def get(session: Session, org_id: str, job_id: str, *, lock: bool = False) -> TrainingJob:
    stmt = select(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.org_id == org_id)
    job = session.execute(stmt.with_for_update() if lock else stmt).scalar()
    if job is None:
        raise NotFound(f"No training job {job_id!r}", param="id")
    return job


def list_query(org_id: str, status: str | None = None, method: str | None = None):
    stmt = select(TrainingJob).where(TrainingJob.org_id == org_id)
    if status:
        stmt = stmt.where(TrainingJob.status == status)
    if method:
        stmt = stmt.where(TrainingJob.method == method)
    return stmt


def cancel(session: Session, org_id: str, job_id: str) -> TrainingJob:
    """A queued job is cancelled at once; a running one is asked to stop (its worker does it)."""
    job = get(session, org_id, job_id, lock=True)
    if job.status in TERMINAL:
        raise InvalidRequest(f"Job {job.id} is already {job.status}", code="job_terminal")
    if job.status == "queued":
        transition(session, job, "cancelled", "Job cancelled before it started")
    elif not job.cancel_requested:
        job.cancel_requested = True
        add_event(session, job.id, "job.cancel_requested", "Cancellation requested; stopping after this step")
    return job


def heartbeat(session: Session, org_id: str, job_id: str) -> TrainingJob:
    job = get(session, org_id, job_id)
    job.last_heartbeat_at = utcnow()
    return job


def checkpoints(session: Session, job_id: str) -> list[Checkpoint]:
    return list(session.execute(select(Checkpoint).where(Checkpoint.job_id == job_id)
                                .order_by(Checkpoint.step, Checkpoint.seq)).scalars())


def final_checkpoint(session: Session, job_id: str) -> Checkpoint | None:
    rows = checkpoints(session, job_id)
    finals = [c for c in rows if c.final]
    return (finals or rows or [None])[-1]
