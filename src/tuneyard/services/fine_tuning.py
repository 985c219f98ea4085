"""OpenAI fine-tuning jobs (``/api/v1/fine_tuning/jobs``) over tuneyard's training jobs.

A ``fine_tuning.job`` *is* a training job: created through ``jobs.create`` (same validation,
credit hold, scheduler), listed by ``/v1/training_jobs`` too. Only the vocabulary differs:

* statuses: ``queued``/``provisioning`` -> ``queued``, ``running`` -> ``running``,
  ``completed`` -> ``succeeded``, ``failed``, ``cancelled``;
* methods: ``supervised`` (``training_type: "sft"``) -> ``sft``, ``dpo`` -> ``dpo``, and a GRPO job
  made on ``/v1`` shows as ``reinforcement``;
* the fine-tuned model is ``ft:<base>:<suffix>`` (the suffix defaults to the job id), stored as
  the job's ``output_name``, so deployments and ``/v1/models`` know it by the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tuneyard import modelhub
from tuneyard.errors import InvalidRequest, NotFound
from tuneyard.services import costs, hyperparameters, jobs, openai_files
from tuneyard.services.dataset_formats import check_method
from tuneyard.services.openai_ids import to_native, to_openai, unix
from tuneyard.settings import Settings
from tuneyard.store.models import Checkpoint, Dataset, JobEvent, TrainingJob, utcnow

STATUS = {"queued": "queued", "provisioning": "queued", "running": "running", "completed": "succeeded",
          "failed": "failed", "cancelled": "cancelled"}
METHOD_TO_OPENAI = {"sft": "supervised", "dpo": "dpo", "grpo": "reinforcement"}
TRAINING_TYPES = {"sft": "sft", "supervised": "sft", "sft_offline": "sft", "dpo": "dpo"}
SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
FT_PREFIX = "ft:"


@dataclass
class FineTuneRequest:
    model: str
    training_file: str
    validation_file: str | None = None
    training_type: str | None = None
    method: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    gpu: dict | None = None


def _method(req: FineTuneRequest) -> tuple[str, dict[str, Any]]:
    """(tuneyard method, the hyperparameters nested in OpenAI's ``method`` object)."""
    nested: dict[str, Any] = {}
    from_method = None
    if req.method is not None:
        kind = str(req.method.get("type") or "").lower()
        if kind == "reinforcement":
            raise InvalidRequest("method 'reinforcement' is not available on this API: create a GRPO job with a "
                                 "reward function on /v1/training_jobs", param="method.type",
                                 code="unsupported_method")
        if kind not in TRAINING_TYPES:
            raise InvalidRequest("method.type must be 'supervised' or 'dpo'", param="method.type")
        from_method = TRAINING_TYPES[kind]
        section = req.method.get(kind) or {}
        if not isinstance(section, dict) or not isinstance(section.get("hyperparameters") or {}, dict):
            raise InvalidRequest(f"method.{kind}.hyperparameters must be an object", param=f"method.{kind}")
        nested = dict(section.get("hyperparameters") or {})
    from_type = None
    if req.training_type is not None:
        from_type = TRAINING_TYPES.get(str(req.training_type).lower())
        if from_type is None:
            raise InvalidRequest(f"training_type must be one of sft, dpo (got {req.training_type!r})",
                                 param="training_type", code="unsupported_training_type")
    if from_type and from_method and from_type != from_method:
        raise InvalidRequest(f"training_type {req.training_type!r} contradicts method.type "
                             f"{req.method.get('type')!r}", param="training_type")
    return from_type or from_method or "sft", nested


def _hyperparameters(method: str, raw: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """OpenAI's and Synth's names onto the runner's; ``learning_rate_multiplier`` scales the default."""
    raw = dict(raw)
    multiplier = raw.pop("learning_rate_multiplier", None)
    if seed is not None:
        if "seed" in raw and raw["seed"] != seed:
            raise InvalidRequest("seed is given twice with different values", param="seed")
        raw["seed"] = seed
    hp = hyperparameters.normalize(raw)
    if multiplier not in (None, "auto"):
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or multiplier <= 0:
            raise InvalidRequest("hyperparameters.learning_rate_multiplier must be a positive number or 'auto'",
                                 param="hyperparameters.learning_rate_multiplier")
        if "learning_rate" in hp:
            raise InvalidRequest("Give learning_rate or learning_rate_multiplier, not both",
                                 param="hyperparameters.learning_rate_multiplier")
        hp["learning_rate"] = float(multiplier) * _default_lr(method, hp.get("use_lora", True))
    return hp


def _default_lr(method: str, use_lora: bool) -> float:
    from tuneyard.training.spec import default_hyperparameters  # light: no torch

    return float(default_hyperparameters(method, use_lora)["learning_rate"])


def create(session: Session, settings: Settings, org_id: str, req: FineTuneRequest) -> TrainingJob:
    model = (req.model or "").strip()
    if not model:
        raise InvalidRequest("model is required", param="model", code="missing_required_parameter")
    if model.startswith(FT_PREFIX):
        raise InvalidRequest("Continuing from a fine-tuned model is not supported; give its base model",
                             param="model", code="model_not_supported")
    try:
        resolved = modelhub.resolve_model(model)
    except modelhub.ModelNotFound as exc:
        raise InvalidRequest(f"Model {model!r} is not available for fine-tuning here (no downloads are "
                             f"attempted). Available: {', '.join(exc.available) or '(none)'}", param="model",
                             code="model_not_available") from None
    if req.suffix is not None and not SUFFIX.match(req.suffix):
        raise InvalidRequest("suffix must be 1-64 characters: letters, digits, '.', '_' or '-'", param="suffix")
    if not req.training_file:
        raise InvalidRequest("training_file is required", param="training_file", code="missing_required_parameter")
    train = openai_files.get(session, org_id, req.training_file, param="training_file")
    valid = openai_files.get(session, org_id, req.validation_file, param="validation_file") \
        if req.validation_file else None
    method, nested = _method(req)
    if not isinstance(req.hyperparameters, dict):
        raise InvalidRequest("hyperparameters must be an object", param="hyperparameters")
    clash = set(nested) & set(req.hyperparameters)
    if clash:
        raise InvalidRequest(f"{min(clash)!r} is given both in hyperparameters and in method",
                             param="hyperparameters")
    hp = _hyperparameters(method, {**req.hyperparameters, **nested}, req.seed)
    problem = check_method(train.format, method)
    if problem:
        raise InvalidRequest(problem, param="training_file", code="invalid_training_file")
    job = jobs.create(session, settings, org_id, jobs.JobRequest(
        base_model=resolved.id, dataset_id=train.id, method=method, hyperparameters=hp, gpu=req.gpu,
        validation_dataset_id=valid.id if valid else None, origin="openai", suffix=req.suffix))
    job.output_name = fine_tuned_name(job.base_model, req.suffix or to_openai("job", job.id))
    return job


def fine_tuned_name(base_model: str, suffix: str) -> str:
    return f"{FT_PREFIX}{base_model}:{suffix}"


def get(session: Session, org_id: str, job_id: str, *, lock: bool = False) -> TrainingJob:
    try:
        return jobs.get(session, org_id, to_native("job", job_id), lock=lock)
    except NotFound:
        raise NotFound(f"No fine-tuning job {job_id!r}", param="fine_tuning_job_id") from None


def cancel(session: Session, org_id: str, job_id: str) -> TrainingJob:
    return jobs.cancel(session, org_id, get(session, org_id, job_id).id)


def list_query(org_id: str, *, status: str | None = None, model: str | None = None, file_id: str | None = None,
               created_after: int | None = None, created_before: int | None = None):
    """The organization's jobs, optionally filtered as synth-ai's ``JobsClient.sft.list`` asks: ``status``
    (OpenAI's or tuneyard's word), ``model`` (base model or fine-tuned model id), ``file_id`` (training or
    validation file), ``created_after`` / ``created_before`` (unix seconds)."""
    stmt = jobs.list_query(org_id)
    if status:
        word = {"canceled": "cancelled"}.get(status.lower(), status.lower())
        natives = sorted({k for k, v in STATUS.items() if v == word} | ({word} if word in STATUS else set()))
        if not natives:
            raise InvalidRequest(f"Unknown status {status!r}: one of {', '.join(sorted(set(STATUS.values())))}",
                                 param="status")
        stmt = stmt.where(TrainingJob.status.in_(natives))
    if model:
        stmt = stmt.where(or_(TrainingJob.base_model == model, TrainingJob.output_name == model))
    if file_id:
        native = to_native("file", file_id)
        stmt = stmt.where(or_(TrainingJob.dataset_id == native, TrainingJob.validation_dataset_id == native))
    if created_after is not None:
        stmt = stmt.where(TrainingJob.created_at > datetime.fromtimestamp(created_after, UTC))
    if created_before is not None:
        stmt = stmt.where(TrainingJob.created_at < datetime.fromtimestamp(created_before, UTC))
    return stmt


def _estimated_finish(session: Session, settings: Settings, job: TrainingJob) -> int | None:
    if job.status not in ("queued", "provisioning", "running"):
        return None
    now = utcnow()
    if job.status == "running" and job.started_at and job.current_step and job.total_steps:
        per_step = (now - job.started_at).total_seconds() / job.current_step
        return unix(now) + int(per_step * max(job.total_steps - job.current_step, 0))
    rows = session.execute(select(Dataset.num_rows).where(Dataset.id == job.dataset_id)).scalar() or 1
    seconds = costs.job_seconds(settings, job.method, job.hyperparameters or {}, rows, job.gpu_type)
    return unix(job.created_at) + int(seconds)


def _hyperparameters_json(job: TrainingJob) -> dict[str, Any]:
    hp = dict(job.hyperparameters or {})
    lr = hp.get("learning_rate")
    out: dict[str, Any] = {
        "n_epochs": hp.get("num_epochs", "auto"), "batch_size": hp.get("batch_size", "auto"),
        "learning_rate_multiplier": round(lr / _default_lr(job.method, hp.get("use_lora", True)), 6)
        if lr is not None and job.method in METHOD_TO_OPENAI else "auto"}
    if job.method == "dpo":
        out["beta"] = hp.get("beta", "auto")
    return {**hp, **out}


def job_json(session: Session, settings: Settings, job: TrainingJob) -> dict[str, Any]:
    status = STATUS.get(job.status, job.status)
    hp = _hyperparameters_json(job)
    kind = METHOD_TO_OPENAI.get(job.method, job.method)
    error = {"code": job.error_code, "message": job.error_message or "", "param": None} if job.error_code else None
    return {
        "id": to_openai("job", job.id), "object": "fine_tuning.job", "model": job.base_model,
        "created_at": unix(job.created_at),
        "finished_at": unix(job.completed_at) if job.status in ("completed", "failed", "cancelled") else None,
        "fine_tuned_model": job.output_name if job.status == "completed" else None,
        "organization_id": job.org_id, "result_files": [], "status": status,
        "training_file": to_openai("file", job.dataset_id),
        "validation_file": to_openai("file", job.validation_dataset_id),
        "hyperparameters": hp, "method": {"type": kind, kind: {"hyperparameters": hp}},
        "training_type": job.method, "trained_tokens": job.trained_tokens if job.status == "completed" else None,
        "error": error, "seed": (job.hyperparameters or {}).get("seed"),
        "estimated_finish": _estimated_finish(session, settings, job),
        "user_provided_suffix": job.suffix, "integrations": [], "metadata": None,
        # tuneyard's view of the same row (GET /v1/training_jobs/{training_job_id})
        "training_job_id": job.id, "tuneyard_status": job.status, "current_step": job.current_step,
        "total_steps": job.total_steps, "gpu": {"type": job.gpu_type, "count": job.gpu_count},
    }


# ---- events ---------------------------------------------------------------------------------

def _event_seq(session: Session, job_id: str, cursor: str | None) -> int | None:
    if not cursor:
        return None
    if cursor.isdigit():
        return int(cursor)
    seq = session.execute(select(JobEvent.seq_in_job).where(
        JobEvent.job_id == job_id, JobEvent.id == to_native("event", cursor))).scalar()
    if seq is None:
        raise InvalidRequest(f"Unknown cursor {cursor!r} for this job's events", param="after")
    return seq


def events_page(session: Session, job_id: str, after: str | None, limit: int) -> tuple[list[JobEvent], bool]:
    """Newest first, as OpenAI lists them; ``after`` is the last (oldest) event of the previous page."""
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100", param="limit")
    stmt = select(JobEvent).where(JobEvent.job_id == job_id)
    seq = _event_seq(session, job_id, after)
    if seq is not None:
        stmt = stmt.where(JobEvent.seq_in_job < seq)
    rows = list(session.execute(stmt.order_by(JobEvent.seq_in_job.desc()).limit(limit + 1)).scalars())
    return rows[:limit], len(rows) > limit


def events_after(session: Session, job_id: str, seq: int, limit: int = 100) -> list[JobEvent]:
    """Oldest first, for the live stream."""
    return list(session.execute(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq_in_job > seq)
                                .order_by(JobEvent.seq_in_job).limit(limit)).scalars())


def metric_points(session: Session, job_id: str, *, name: str | None, after_step: int | None,
                  limit: int) -> list[dict[str, Any]]:
    """The job's ``metrics`` events as one point per value (``name``, ``step``, ``value``), oldest first:
    the learning API's ``/metrics`` view of the events ``event_json`` shows (``loss`` is ``train_loss``)."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000", param="limit")
    rows = session.execute(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "metrics")
                           .order_by(JobEvent.seq_in_job)).scalars()
    points: list[dict[str, Any]] = []
    for e in rows:
        data = e.data or {}
        step = data.get("step")
        if not isinstance(step, int) or (after_step is not None and step <= after_step):
            continue
        for key, value in data.items():
            metric = "train_loss" if key == "loss" else key
            if key in ("step", "total_steps") or not isinstance(value, (int, float)) or (name and metric != name):
                continue
            points.append({"name": metric, "step": step, "value": value, "created_at": unix(e.created_at)})
            if len(points) >= limit:
                return points
    return points


def stream_start(session: Session, job_id: str, after: str | None) -> int:
    return _event_seq(session, job_id, after) or 0


def event_json(e: JobEvent) -> dict[str, Any]:
    data = dict(e.data or {})
    if e.type == "metrics":
        if "loss" in data:
            data["train_loss"] = data["loss"]
        kind = "metrics"
    else:
        kind = "message"
    data["event_type"] = e.type
    return {"id": to_openai("event", e.id), "object": "fine_tuning.job.event", "created_at": unix(e.created_at),
            "level": {"warning": "warn"}.get(e.level, e.level), "message": e.message, "type": kind, "data": data,
            "seq": e.seq_in_job}


# ---- checkpoints ----------------------------------------------------------------------------

def checkpoints_page(session: Session, job: TrainingJob, after: str | None, limit: int
                     ) -> tuple[list[Checkpoint], bool]:
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100", param="limit")
    rows = sorted(jobs.checkpoints(session, job.id), key=lambda c: (c.step, c.seq), reverse=True)
    if after:
        ids = [c.id for c in rows]
        native = to_native("checkpoint", after)
        if native not in ids:
            raise InvalidRequest(f"Unknown cursor {after!r} for this job's checkpoints", param="after")
        rows = rows[ids.index(native) + 1:]
    return rows[:limit], len(rows) > limit


def checkpoint_json(job: TrainingJob, c: Checkpoint) -> dict[str, Any]:
    metrics = {"step": c.step, **{("train_loss" if k == "loss" else k): v for k, v in (c.metrics or {}).items()
                                  if v is not None}}
    return {"id": to_openai("checkpoint", c.id), "object": "fine_tuning.job.checkpoint",
            "created_at": unix(c.created_at), "fine_tuned_model_checkpoint": f"{job.output_name}:ckpt-step-{c.step}",
            "fine_tuning_job_id": to_openai("job", job.id), "metrics": metrics, "step_number": c.step,
            "final": c.final}
