"""``/v1/training_jobs``: create, list, get, cancel, heartbeat, checkpoints and the model download."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.context import Context
from tuneyard.errors import InvalidRequest
from tuneyard.services import jobs, rewards, signing
from tuneyard.services.job_states import TERMINAL
from tuneyard.services.pagination import page
from tuneyard.store.models import Checkpoint, TrainingJob, utcnow

router = APIRouter(prefix="/v1/training_jobs", tags=["training_jobs"])
CHECKPOINT_DESTINATIONS = {None, "veri", "tuneyard", "local", "default"}


class CreateTrainingJob(BaseModel):
    # Unknown top-level keys from newer clients (region, volume, script, hf_push…) are ignored;
    # unknown *hyperparameters* are an error (services.hyperparameters).
    model_config = ConfigDict(extra="ignore")

    base_model: str = Field(min_length=1, max_length=300)
    dataset_id: str
    method: str = "grpo"
    output_name: str | None = Field(default=None, max_length=300)
    reward_function_id: str | None = None
    reward_function_ids: list[str] | None = None
    reward_weights: list[float] | None = None
    reward_source: str | None = None
    reward_sources: list[str] | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    gpu: dict[str, Any] | None = None
    gpu_type: str | None = None
    gpu_count: int | None = None
    provider: str | None = None
    checkpoint_destination: dict[str, Any] | None = None
    requires_heartbeat: bool = False
    resume_from: str | None = None
    validation_dataset_id: str | None = None


def base_url(ctx: Context, request: Request) -> str:
    return ctx.settings.public_url or str(request.base_url)


def job_json(job: TrainingJob, download_url: str | None = None) -> dict:
    end = job.completed_at or utcnow()
    begin = job.started_at or job.provisioning_at
    return {
        "id": job.id, "object": "training_job", "status": job.status, "base_model": job.base_model,
        "method": job.method, "dataset_id": job.dataset_id,
        "reward_function_id": (job.reward_function_ids or [None])[0],
        "reward_function_ids": job.reward_function_ids, "reward_weights": job.reward_weights,
        "reward_count": len(job.reward_function_ids or []), "output_name": job.output_name,
        "hyperparameters": job.hyperparameters,
        "gpu_requested": {"type": job.gpu_type, "count": job.gpu_count},
        "gpu": {"type": job.gpu_type, "count": job.gpu_count} if job.provisioning_at else None,
        "provider": job.provider, "region": None, "num_nodes": 1,
        "current_step": job.current_step, "total_steps": job.total_steps, "current_loss": job.current_loss,
        "trained_tokens": job.trained_tokens,
        "duration_seconds": round((end - begin).total_seconds(), 3) if begin else None,
        "cost_usd": round(job.cost_usd or 0.0, 6), "estimated_cost_usd": job.estimated_cost_usd,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "download_url": download_url, "cancel_requested": job.cancel_requested,
        "requires_heartbeat": job.requires_heartbeat, "checkpoint_destination": job.checkpoint_destination,
        "resume_from": job.resume_from, "attempt": job.attempt, "wandb_run_url": None, "hf_repo_url": None,
        "dashboard_url": None, "created_at": iso(job.created_at), "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at), "completed_at": iso(job.completed_at),
    }


def _download_url(ctx: Context, request: Request, session, job: TrainingJob) -> str | None:
    """A signed URL of the final weights file (what veri-sdk ≤0.2.10 saves as model.safetensors)."""
    if job.status != "completed":
        return None
    ckpt = jobs.final_checkpoint(session, job.id)
    if ckpt is None:
        return None
    weights = [f["path"] for f in ckpt.files if f["path"].endswith(".safetensors")]
    if not weights:
        return None
    preferred = next((p for p in weights if p.startswith("adapter_model")), weights[0])
    key = f"{ckpt.blob_prefix}/{preferred}"
    return signing.download_url(ctx.settings, ctx.blobs, base_url(ctx, request), key)[0]


def _render(ctx: Context, request: Request, session, job: TrainingJob) -> dict:
    return job_json(job, _download_url(ctx, request, session, job))


@router.post("", status_code=201)
def create_training_job(body: CreateTrainingJob, request: Request, principal: PrincipalDep,
                        session: SessionDep, ctx: CtxDep) -> dict:
    destination = body.checkpoint_destination or {}
    kind = destination.get("type", destination.get("destination"))
    if kind not in CHECKPOINT_DESTINATIONS:
        raise InvalidRequest(f"checkpoint_destination {kind!r} is not supported: checkpoints are kept in "
                             "tuneyard's storage (set TUNEYARD_STORAGE_URL=s3://… to keep them in a bucket)",
                             param="checkpoint_destination")
    reward_ids = list(body.reward_function_ids or ([body.reward_function_id] if body.reward_function_id else []))
    for i, source in enumerate(body.reward_sources or ([body.reward_source] if body.reward_source else [])):
        rf = rewards.create_from_source(session, ctx.blobs, principal.org_id, name=f"inline-{i}", source=source,
                                        param="reward_source")
        reward_ids.append(rf.id)
    gpu = body.gpu or ({"type": body.gpu_type, "count": body.gpu_count or 1} if body.gpu_type else None)
    job = jobs.create(session, ctx.settings, principal.org_id, jobs.JobRequest(
        base_model=body.base_model, dataset_id=body.dataset_id, method=body.method, output_name=body.output_name,
        reward_function_ids=reward_ids, reward_weights=body.reward_weights, hyperparameters=body.hyperparameters,
        gpu=gpu, provider=body.provider, checkpoint_destination=body.checkpoint_destination,
        requires_heartbeat=body.requires_heartbeat, resume_from=body.resume_from,
        validation_dataset_id=body.validation_dataset_id))
    return job_json(job)


@router.get("")
def list_training_jobs(request: Request, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                       limit: int = Query(20), after: str | None = None, status: str | None = None,
                       method: str | None = None) -> dict:
    rows, has_more = page(session, jobs.list_query(principal.org_id, status, method), TrainingJob,
                          limit=limit, after=after)
    return list_envelope([_render(ctx, request, session, j) for j in rows], has_more)


@router.get("/{job_id}")
def get_training_job(job_id: str, request: Request, principal: PrincipalDep, session: SessionDep,
                     ctx: CtxDep) -> dict:
    return _render(ctx, request, session, jobs.get(session, principal.org_id, job_id))


@router.post("/{job_id}/cancel")
def cancel_training_job(job_id: str, request: Request, principal: PrincipalDep, session: SessionDep,
                        ctx: CtxDep) -> dict:
    return _render(ctx, request, session, jobs.cancel(session, principal.org_id, job_id))


@router.post("/{job_id}/heartbeat")
def heartbeat(job_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    job = jobs.heartbeat(session, principal.org_id, job_id)
    return {"object": "training_job.heartbeat", "id": job.id, "status": job.status,
            "received_at": iso(job.last_heartbeat_at)}


def _checkpoint_json(ctx: Context, base: str, ckpt: Checkpoint) -> dict:
    files = []
    for f in ckpt.files:
        url, expires = signing.download_url(ctx.settings, ctx.blobs, base, f"{ckpt.blob_prefix}/{f['path']}")
        files.append({"path": f["path"], "bytes": f["bytes"], "url": url})
    return {"id": ckpt.id, "object": "checkpoint", "step": ckpt.step, "final": ckpt.final, "files": files,
            "metrics": ckpt.metrics, "created_at": iso(ckpt.created_at)}


@router.get("/{job_id}/checkpoints")
def list_checkpoints(job_id: str, request: Request, principal: PrincipalDep, session: SessionDep,
                     ctx: CtxDep) -> dict:
    job = jobs.get(session, principal.org_id, job_id)
    data = [_checkpoint_json(ctx, base_url(ctx, request), c) for c in jobs.checkpoints(session, job.id)]
    return {"object": "list", "data": data, "has_more": False}


@router.get("/{job_id}/model")
def get_model(job_id: str, request: Request, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    job = jobs.get(session, principal.org_id, job_id)
    ckpt = jobs.final_checkpoint(session, job.id) if job.status in TERMINAL else None
    if job.status != "completed" or ckpt is None:
        raise InvalidRequest(f"Job {job.id} is {job.status}; its model is available once it has completed",
                             code="model_not_ready")
    body = _checkpoint_json(ctx, base_url(ctx, request), ckpt)
    return {"object": "training_job.model", "job_id": job.id, "output_name": job.output_name,
            "base_model": job.base_model, "checkpoint_id": ckpt.id, "step": ckpt.step,
            "download_url": _download_url(ctx, request, session, job), "files": body["files"],
            "expires_in_seconds": ctx.settings.signed_url_ttl_seconds}
