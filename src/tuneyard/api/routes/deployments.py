"""``/v1/deployments``: create, list, get, stop, events, per-request logs and metrics."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.context import Context
from tuneyard.errors import InvalidRequest
from tuneyard.services import deployments, request_log
from tuneyard.services.pagination import page
from tuneyard.store.models import Deployment, DeploymentRequest, utcnow

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])


class CreateDeployment(BaseModel):
    # Newer clients send autoscaling and engine knobs (num_replicas, vllm_extra_args, …): ignored.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    source: str | None = None
    gpu: dict[str, Any] | None = None
    gpu_type: str | None = None
    gpu_count: int | None = None
    provider: str | None = None
    engine: str | None = None
    max_batch_size: int | None = None
    max_model_len: int | None = None


def base_url(ctx: Context, request: Request) -> str:
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


def deployment_json(dep: Deployment, base: str) -> dict:
    live = dep.status in ("serving", "unhealthy")
    now = utcnow()
    uptime = dep.serving_seconds or 0.0
    if dep.status == "serving" and dep.accounted_at:
        uptime += max(0.0, (now - dep.accounted_at).total_seconds())
    return {
        "id": dep.id, "object": "deployment", "name": dep.name, "status": dep.status, "model": dep.model,
        "source": dep.source, "base_model": dep.base_model, "training_job_id": dep.training_job_id,
        "adapter": dep.adapter, "engine": dep.engine,
        "endpoint_url": f"{base}/v1/deployments/{dep.id}/chat/completions" if live else None,
        "gpu": {"type": dep.gpu_type, "count": dep.gpu_count}, "provider": dep.provider,
        "cost_per_hour_usd": round(dep.cost_per_hour_usd or 0.0, 6),
        "total_cost_usd": round(dep.total_cost_usd or 0.0, 6),
        "total_requests": dep.total_requests, "prompt_tokens": dep.prompt_tokens,
        "completion_tokens": dep.completion_tokens, "serving_seconds": round(uptime, 3),
        "restarts": dep.restarts, "error": dep.error_message, "error_code": dep.error_code,
        "config": dep.config or {}, "created_at": iso(dep.created_at), "updated_at": iso(dep.updated_at),
        "started_at": iso(dep.started_at), "stopped_at": iso(dep.stopped_at),
    }


@router.post("", status_code=201)
def create_deployment(body: CreateDeployment, request: Request, principal: PrincipalDep, session: SessionDep,
                      ctx: CtxDep) -> dict:
    gpu = body.gpu or ({"type": body.gpu_type, "count": body.gpu_count or 1} if body.gpu_type else None)
    dep = deployments.create(session, ctx.settings, principal.org_id, deployments.DeploymentRequest(
        model=body.model, name=body.name, source=body.source, gpu=gpu, provider=body.provider, engine=body.engine,
        config={"max_batch_size": body.max_batch_size, "max_model_len": body.max_model_len}))
    return deployment_json(dep, base_url(ctx, request))


@router.get("")
def list_deployments(request: Request, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                     limit: int = Query(20), after: str | None = None, status: str | None = None) -> dict:
    rows, has_more = page(session, deployments.list_query(principal.org_id, status), Deployment,
                          limit=limit, after=after)
    base = base_url(ctx, request)
    return list_envelope([deployment_json(d, base) for d in rows], has_more)


@router.get("/{deployment_id}")
def get_deployment(deployment_id: str, request: Request, principal: PrincipalDep, session: SessionDep,
                   ctx: CtxDep) -> dict:
    return deployment_json(deployments.get(session, principal.org_id, deployment_id), base_url(ctx, request))


@router.post("/{deployment_id}/stop")
def stop_deployment(deployment_id: str, request: Request, principal: PrincipalDep, session: SessionDep,
                    ctx: CtxDep) -> dict:
    return deployment_json(deployments.stop(session, principal.org_id, deployment_id), base_url(ctx, request))


@router.get("/{deployment_id}/events")
def list_events(deployment_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    dep = deployments.get(session, principal.org_id, deployment_id)
    data = [{"id": e.id, "object": "deployment.event", "type": e.type, "level": e.level, "message": e.message,
             "data": e.data, "created_at": iso(e.created_at)} for e in deployments.events(session, dep.id)]
    return {"object": "list", "data": data, "has_more": False}


def _timestamp(value: str | None, param: str) -> datetime | None:
    """ISO-8601 or unix seconds."""
    if value is None or value == "":
        return None
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{param} must be an ISO-8601 timestamp or unix seconds", param=param) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def request_json(r: DeploymentRequest) -> dict:
    return {"id": r.id, "object": "deployment.request", "deployment_id": r.deployment_id,
            "status_code": r.status_code, "latency_ms": r.latency_ms, "ttft_ms": r.ttft_ms, "tpot_ms": r.tpot_ms,
            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens, "streamed": r.streamed,
            "finish_reason": r.finish_reason, "error_message": r.error_message,
            "client_disconnected": r.client_disconnected, "created_at": iso(r.created_at),
            "completed_at": iso(r.completed_at)}


@router.get("/{deployment_id}/requests")
def list_requests(deployment_id: str, principal: PrincipalDep, session: SessionDep, limit: int = Query(50),
                  after: str | None = None, from_: str | None = Query(None, alias="from"), to: str | None = None,
                  errors_only: bool = False) -> dict:
    dep = deployments.get(session, principal.org_id, deployment_id)
    stmt = request_log.query(dep.id, _timestamp(from_, "from"), _timestamp(to, "to"), errors_only)
    rows, has_more = page(session, stmt, DeploymentRequest, limit=limit, after=after)
    return list_envelope([request_json(r) for r in rows], has_more)


@router.get("/{deployment_id}/metrics")
def get_metrics(deployment_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    dep = deployments.get(session, principal.org_id, deployment_id)
    body = deployment_json(dep, "")
    health = dep.health or {}
    return {
        "object": "deployment.metrics", "deployment_id": dep.id, "status": dep.status,
        "uptime_seconds": body["serving_seconds"], **request_log.metrics(session, dep),
        "cost": {"cost_per_hour_usd": body["cost_per_hour_usd"], "total_cost_usd": body["total_cost_usd"]},
        "health": {"status": "healthy" if dep.status == "serving" else dep.status,
                   "last_check_at": iso(dep.health_checked_at), "consecutive_failures": dep.health_failures,
                   "restarts": dep.restarts},
        "engine": {"name": health.get("engine"), **(health.get("stats") or {})},
    }
