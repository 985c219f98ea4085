"""Deployments: what to serve (resolved and validated at creation), listing, stopping.

Running them is the supervisor's business (tuneyard.inference.supervisor); this module records
intent. ``model`` may name a training job (its id or its ``output_name``) or a base model; a
completed LoRA job is served as its adapter on the job's base model, a full fine-tune as a model
of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard import modelhub
from tuneyard.errors import InvalidRequest, NotFound, RateLimited, Unavailable
from tuneyard.ids import new_id
from tuneyard.services import billing, cluster, deployment_billing, jobs, rates
from tuneyard.services.deployment_states import ACTIVE, STATUSES, TERMINAL, add_event, transition
from tuneyard.settings import Settings
from tuneyard.store.models import Deployment, DeploymentEvent, TrainingJob

SOURCES = ("training_job", "huggingface")
ENGINES = ("auto", "transformers", "vllm")
# Create-time knobs a caller may set (0.2.33+ clients send some of these); others are ignored.
CONFIG_KEYS = {"max_batch_size": (int, 1, 256), "max_model_len": (int, 64, 131072)}


@dataclass
class Target:
    source: str
    base_model: str
    job: TrainingJob | None = None
    checkpoint_id: str | None = None
    adapter: bool = False


@dataclass
class DeploymentRequest:
    model: str
    name: str | None = None
    source: str | None = None
    gpu: dict | None = None
    provider: str | None = None
    engine: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def resolve_target(session: Session, org_id: str, model: str, source: str | None) -> Target:
    """A training job (by id or output name) of this organization, else a base model available here."""
    model = (model or "").strip()
    if not model:
        raise InvalidRequest("model is required: a training job id, a fine-tune's output_name or a base model",
                             param="model")
    if source is not None and source not in SOURCES:
        raise InvalidRequest(f"source must be one of {', '.join(SOURCES)}", param="source")
    job = session.execute(select(TrainingJob).where(
        TrainingJob.org_id == org_id, (TrainingJob.id == model) | (TrainingJob.output_name == model))
        .order_by((TrainingJob.status == "completed").desc(), TrainingJob.seq.desc())).scalars().first()
    if job is not None:
        if job.status != "completed":
            raise InvalidRequest(f"Training job {job.id} is {job.status}; deploy it once it has completed",
                                 param="model", code="model_not_ready")
        ckpt = jobs.final_checkpoint(session, job.id)
        if ckpt is None:
            raise InvalidRequest(f"Training job {job.id} has no checkpoint to serve", param="model",
                                 code="model_not_ready")
        paths = {f["path"] for f in ckpt.files}
        if "adapter_config.json" not in paths and "config.json" not in paths:
            raise InvalidRequest(f"The checkpoint of {job.id} holds neither an adapter nor a model",
                                 param="model", code="model_not_ready")
        return Target("training_job", job.base_model, job, ckpt.id, adapter="adapter_config.json" in paths)
    if model.startswith("job_"):
        raise NotFound(f"No training job {model!r}", param="model")
    if not modelhub.is_resolvable(model):
        available = ", ".join(m["id"] for m in modelhub.list_available_models()) or "(none)"
        raise InvalidRequest(f"Model {model!r} is neither a training job or fine-tune of yours nor a base model "
                             f"available on this cluster (no downloads are attempted). Available: {available}",
                             param="model", code="model_not_found")
    canonical = modelhub.BUNDLED_MODEL_ID if modelhub.is_bundled_name(model) else model
    return Target("huggingface", canonical)


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (kind, low, high) in CONFIG_KEYS.items():
        if raw.get(key) is None:
            continue
        value = raw[key]
        if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidRequest(f"{key} must be a whole number between {low} and {high}", param=key)
        out[key] = value
    return out


def create(session: Session, settings: Settings, org_id: str, req: DeploymentRequest) -> Deployment:
    target = resolve_target(session, org_id, req.model, req.source)
    shape = cluster.resolve_shape(req.gpu)
    provider = rates.choose_provider(settings, shape.type, req.provider)  # the cheapest this cluster runs on
    engine = (req.engine or settings.inference_engine or "auto").lower()
    if engine not in ENGINES:
        raise InvalidRequest(f"engine must be one of {', '.join(ENGINES)}", param="engine")
    if engine == "vllm" and shape.type == "cpu":
        raise InvalidRequest("The vLLM engine needs a GPU; this deployment would run on the CPU", param="engine")
    config = _config(req.config)
    name = (req.name or "").strip() or (target.job.output_name if target.job else target.base_model.split("/")[-1])
    if len(name) > 200:
        raise InvalidRequest("name must be at most 200 characters", param="name")
    billing.lock_org(session, org_id)  # the count and the credit check below see every committed deployment
    active = session.execute(select(func.count()).select_from(Deployment).where(
        Deployment.org_id == org_id, Deployment.status.in_(ACTIVE))).scalar_one()
    if active >= settings.max_active_deployments_per_org:
        raise RateLimited(f"Your organization already has {active} active deployments (limit "
                          f"{settings.max_active_deployments_per_org}); stop one first", code="deployment_limit")
    dep = Deployment(
        id=new_id("deployment"), org_id=org_id, name=name, status="queued", model=req.model.strip(),
        source=target.source, base_model=target.base_model, training_job_id=target.job.id if target.job else None,
        checkpoint_id=target.checkpoint_id, adapter=target.adapter, engine=engine, gpu_type=shape.type,
        gpu_count=shape.count, provider=provider, config=config)
    session.add(dep)
    session.flush()
    deployment_billing.reserve(session, settings, dep)  # 402 (and nothing queued) past the credit
    what = f"{target.job.id} ({'LoRA adapter on ' + target.base_model if target.adapter else 'full model'})" \
        if target.job else target.base_model
    add_event(session, dep.id, "deployment.queued", f"Deployment queued: {what} on {shape.type} x{shape.count}",
              data={"model": dep.model, "base_model": dep.base_model, "gpu": shape.as_json(), "engine": engine})
    return dep


def get(session: Session, org_id: str, deployment_id: str, *, lock: bool = False) -> Deployment:
    stmt = select(Deployment).where(Deployment.id == deployment_id, Deployment.org_id == org_id)
    dep = session.execute(stmt.with_for_update() if lock else stmt).scalar()
    if dep is None:
        raise NotFound(f"No deployment {deployment_id!r}", param="id")
    return dep


def list_query(org_id: str, status: str | None = None):
    stmt = select(Deployment).where(Deployment.org_id == org_id)
    if status:
        if status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}", param="status")
        stmt = stmt.where(Deployment.status == status)
    return stmt


def stop(session: Session, org_id: str, deployment_id: str, reason: str | None = None) -> Deployment:
    """Stopped at once: the gateway refuses new requests now, the supervisor ends the worker."""
    dep = get(session, org_id, deployment_id, lock=True)
    if dep.status in TERMINAL:
        raise InvalidRequest(f"Deployment {dep.id} is already {dep.status}", code="deployment_terminal")
    transition(session, dep, "stopped", reason or "Deployment stopped")
    return dep


def events(session: Session, deployment_id: str) -> list[DeploymentEvent]:
    return list(session.execute(select(DeploymentEvent).where(DeploymentEvent.deployment_id == deployment_id)
                                .order_by(DeploymentEvent.seq)).scalars())


@dataclass(frozen=True)
class Route:
    """What the gateway needs to forward one request."""

    id: str
    org_id: str
    status: str
    worker_url: str | None
    worker_auth: str | None = None  # a remote worker's token nonce (inference/worker_auth.py)


def route(session: Session, org_id: str, deployment_id: str) -> Route:
    row = session.execute(select(Deployment.id, Deployment.org_id, Deployment.status, Deployment.worker_url,
                                 Deployment.worker_handle)
                          .where(Deployment.id == deployment_id, Deployment.org_id == org_id)).first()
    if row is None:
        raise NotFound(f"No deployment {deployment_id!r}", param="id")
    *fields, handle = row
    return Route(*fields, worker_auth=(handle or {}).get("auth"))


def not_serving(r: Route) -> Unavailable:
    """The 503 for a deployment that cannot take requests now, with the code veri-sdk 0.2.45 retries on."""
    if r.status in ("queued", "provisioning"):
        return Unavailable(f"Deployment {r.id} is {r.status}; it accepts requests once it is serving",
                           code="deployment_waking", headers={"Retry-After": "5"})
    if r.status == "unhealthy":
        return Unavailable(f"Deployment {r.id} is unhealthy; its worker is being checked or restarted",
                           code="upstream_unavailable", headers={"Retry-After": "5"})
    return Unavailable(f"Deployment {r.id} is {r.status} and no longer serves requests; create a new deployment",
                       code="deployment_not_serving", headers={"Retry-After": "60"})
