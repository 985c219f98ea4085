"""Models served on demand for the Synth/OpenAI surface: a cold model becomes a deployment.

``/api/v1/chat/completions``, ``/api/v1/responses`` and warmup name a *model*, not a deployment.
``ensure`` finds an active deployment of the organization that serves it (by name, id or model) or
creates one through ``deployments.create`` (same validation, credit hold, supervisor, worker
process, gateway and billing as ``/v1/deployments``), named after the model so that responses
carry the model id. Such an on-demand deployment is marked ``config.on_demand``; the ``Keeper``
stops it once nobody has used it for ``synth_idle_unload_seconds`` (a request through the gateway
or a warmup counts as use), which ends its worker and frees the memory. The next request loads it
again.

Warmup statuses read the same rows: none -> ``cold``; queued/provisioning/unhealthy -> ``warming``;
serving -> ``warmed``; the newest one failed -> ``failed`` with its error.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest, NotFound
from tuneyard.services import billing, deployments, synth_models
from tuneyard.services.deployment_states import ACTIVE, TERMINAL
from tuneyard.settings import Settings
from tuneyard.store.models import Deployment, DeploymentRequest, utcnow

log = logging.getLogger("tuneyard.warm_models")
WARMING = ("queued", "provisioning", "unhealthy")


@dataclass(frozen=True)
class Warm:
    deployment_id: str
    status: str  # the deployment's
    created: bool  # this call queued it
    gpu: dict


def _matches(org_id: str, model: str):
    return select(Deployment).where(
        Deployment.org_id == org_id, Deployment.status.in_(ACTIVE),
        or_(Deployment.name == model, Deployment.id == model, Deployment.model == model))


def find_active(session: Session, org_id: str, model: str) -> Deployment | None:
    """The deployment to send ``model``'s requests to: a serving one first, then the newest."""
    rows = list(session.execute(_matches(org_id, model).order_by(Deployment.seq.desc())).scalars())
    return next((d for d in rows if d.status == "serving"), rows[0] if rows else None)


def ensure(session: Session, settings: Settings, org_id: str, model: str, gpu: dict, *,
           touch: bool = False) -> Warm:
    """An active deployment serving ``model``, queued here when there is none."""
    model = (model or "").strip()
    if not model:
        raise InvalidRequest("model is required", param="model", code="missing_required_parameter")
    dep = find_active(session, org_id, model)
    if dep is None or touch:
        billing.lock_org(session, org_id)  # concurrent first requests for a cold model queue one deployment
        dep = find_active(session, org_id, model)
    created = dep is None
    if dep is None and synth_models.deleted_fine_tune(session, org_id, model) is not None:
        raise NotFound(f"The model {model!r} was deleted", param="model", code="model_not_found")
    if dep is None:
        dep = deployments.create(session, settings, org_id, deployments.DeploymentRequest(
            model=model, name=model, gpu={"type": gpu["type"], "count": gpu.get("count", 1)}))
        dep.config = {**(dep.config or {}), "on_demand": True, "touched_at": utcnow().isoformat()}
        log.info("queued on-demand deployment %s for %s", dep.id, model)
    elif touch and (dep.config or {}).get("on_demand"):
        dep.config = {**dep.config, "touched_at": utcnow().isoformat()}
    return Warm(dep.id, dep.status, created, {"type": dep.gpu_type, "count": dep.gpu_count})


def status(session: Session, org_id: str, model: str) -> dict:
    dep = find_active(session, org_id, model)
    if dep is not None:
        state = "warmed" if dep.status == "serving" else "warming"
        return {"status": state, "deployment_id": dep.id, "deployment_status": dep.status, "error": None,
                "gpu": {"type": dep.gpu_type, "count": dep.gpu_count}}
    last = session.execute(select(Deployment).where(
        Deployment.org_id == org_id, or_(Deployment.name == model, Deployment.model == model))
        .order_by(Deployment.seq.desc())).scalars().first()
    if last is not None and last.status == "failed":
        return {"status": "failed", "deployment_id": last.id, "deployment_status": last.status,
                "error": last.error_message or last.error_code or "the model failed to load",
                "gpu": {"type": last.gpu_type, "count": last.gpu_count}}
    return {"status": "cold", "deployment_id": None, "deployment_status": None, "error": None, "gpu": None}


def route_status(session: Session, org_id: str, deployment_id: str) -> tuple[deployments.Route, str | None]:
    """The deployment's route, and its error once it has failed."""
    r = deployments.route(session, org_id, deployment_id)
    error = None
    if r.status in TERMINAL:
        dep = deployments.get(session, org_id, deployment_id)
        error = dep.error_message or dep.error_code or f"deployment {dep.id} is {dep.status}"
    return r, error


# ---- unloading idle models ------------------------------------------------------------------

def _as_dt(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def last_used(session: Session, dep: Deployment) -> datetime:
    last_request = _as_dt(session.execute(select(func.max(DeploymentRequest.created_at))
                                          .where(DeploymentRequest.deployment_id == dep.id)).scalar())
    touched = _as_dt((dep.config or {}).get("touched_at"))
    moments = [m for m in (last_request, touched, dep.started_at, dep.created_at) if m is not None]
    return max(m if m.tzinfo else m.replace(tzinfo=utcnow().tzinfo) for m in moments)


def idle_candidates(session: Session, idle_seconds: float) -> list[tuple[str, str, float]]:
    """(org, deployment, idle seconds) of on-demand deployments unused for ``idle_seconds``."""
    now = utcnow()
    out = []
    rows = session.execute(select(Deployment).where(Deployment.status.in_(("serving", "unhealthy")))).scalars()
    for dep in list(rows):
        if (dep.config or {}).get("on_demand"):
            idle = (now - last_used(session, dep)).total_seconds()
            if idle >= idle_seconds:
                out.append((dep.org_id, dep.id, idle))
    return out


def unload(session: Session, org_id: str, deployment_id: str, idle: float) -> bool:
    dep = deployments.get(session, org_id, deployment_id, lock=True)
    if dep.status in TERMINAL:
        return False
    deployments.stop(session, org_id, dep.id, reason=f"Unloaded: no requests for {idle:.0f} s (on-demand model)")
    return True


class Keeper:
    """A thread that unloads idle on-demand models every few seconds (one per API process; the
    work is idempotent, so several replicas may run it)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Keeper:
        self._thread = threading.Thread(target=self._loop, name="tuneyard-warm-models", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        # Settings are read each round, so an operator (or a test) may change the idle time live.
        while not self._stop.wait(max(0.5, min(5.0, self.ctx.settings.synth_idle_unload_seconds / 4))):
            try:
                with self.ctx.db.session(readonly=True) as s:
                    candidates = idle_candidates(s, self.ctx.settings.synth_idle_unload_seconds)
                for org_id, dep_id, idle in candidates:
                    with self.ctx.db.session() as s:
                        if unload(s, org_id, dep_id, idle):
                            log.info("unloaded idle on-demand deployment %s", dep_id)
            except Exception:
                log.exception("unloading idle models failed")
