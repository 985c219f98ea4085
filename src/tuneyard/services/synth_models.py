"""What ``/api/v1/models`` lists: base models this cluster can serve and the organization's fine-tunes.

A fine-tune is a completed training job whose model has not been deleted; its id is the job's
``output_name`` (``ft:<base>:<suffix>`` for jobs made on ``/api/v1``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard import modelhub
from tuneyard.errors import InvalidRequest, NotFound
from tuneyard.services import catalog, cluster, deployments, gpu_preference, jobs
from tuneyard.services.deployment_states import ACTIVE
from tuneyard.services.job_states import add_event
from tuneyard.services.openai_ids import to_openai, unix
from tuneyard.settings import Settings
from tuneyard.store.db import after_commit
from tuneyard.store.models import Deployment, TrainingJob, utcnow

OWNER = "tuneyard"


def _base_json(m: dict) -> dict:
    return {"id": m["id"], "object": "model", "created": 0, "owned_by": OWNER, "type": "base", "source": m["source"]}


def _fine_tune_json(job: TrainingJob) -> dict:
    return {"id": job.output_name, "object": "model", "created": unix(job.completed_at or job.created_at),
            "owned_by": job.org_id, "type": "fine_tune", "base_model": job.base_model,
            "job_id": to_openai("job", job.id), "training_job_id": job.id, "method": job.method}


def fine_tunes(session: Session, org_id: str) -> list[TrainingJob]:
    return catalog.fine_tunes(session, org_id)


def listing(session: Session, settings: Settings, org_id: str) -> dict:
    bases = catalog.base_models()
    tunes = fine_tunes(session, org_id)
    data = [_base_json(m) for m in bases] + [_fine_tune_json(j) for j in tunes]
    return {
        "object": "list", "data": data, "has_more": False,
        "gpus": {"available": cluster.available_shapes(), "supported": gpu_preference.supported(settings)},
        "fine_tuned_models": [{"id": j.output_name, "base_model": j.base_model,
                               "created_at": unix(j.completed_at or j.created_at),
                               "job_id": to_openai("job", j.id), "status": "succeeded"} for j in tunes],
        "available_models": [m["id"] for m in bases],
        "organization_id": org_id, "customer_id": org_id,
    }


def find_fine_tune(session: Session, org_id: str, model_id: str) -> TrainingJob | None:
    """The newest completed job of this organization serving under ``model_id`` (its output name)."""
    return session.execute(select(TrainingJob).where(
        TrainingJob.org_id == org_id, TrainingJob.output_name == model_id, TrainingJob.status == "completed",
        TrainingJob.model_deleted_at.is_(None)).order_by(TrainingJob.seq.desc())).scalars().first()


def deleted_fine_tune(session: Session, org_id: str, model_id: str) -> TrainingJob | None:
    """A job of this organization whose model ``model_id`` was deleted (and none serves it now)."""
    if find_fine_tune(session, org_id, model_id) is not None:
        return None
    return session.execute(select(TrainingJob).where(
        TrainingJob.org_id == org_id, TrainingJob.output_name == model_id,
        TrainingJob.model_deleted_at.is_not(None))).scalars().first()


def get(session: Session, org_id: str, model_id: str) -> dict:
    job = find_fine_tune(session, org_id, model_id)
    if job is not None:
        return _fine_tune_json(job)
    for m in catalog.base_models():
        if m["id"] == model_id or (modelhub.is_bundled_name(model_id) and m["source"] == "bundled"):
            return _base_json(m)
    raise NotFound(f"The model {model_id!r} does not exist", param="model", code="model_not_found")


def delete(session: Session, ctx, org_id: str, model_id: str) -> dict:
    """Delete a fine-tune: stop what serves it, drop its checkpoints (rows now, files after commit).
    The training job stays (with its events and logs); its model is no longer listed or servable."""
    job = find_fine_tune(session, org_id, model_id)
    if job is None:
        if any(m["id"] == model_id for m in catalog.base_models()):
            raise InvalidRequest(f"{model_id!r} is a base model; only fine-tuned models can be deleted",
                                 param="model")
        raise NotFound(f"The model {model_id!r} does not exist", param="model", code="model_not_found")
    for dep in session.execute(select(Deployment).where(
            Deployment.org_id == org_id, Deployment.training_job_id == job.id,
            Deployment.status.in_(ACTIVE))).scalars().all():
        deployments.stop(session, org_id, dep.id, reason=f"Model {model_id} was deleted")
    prefixes = []
    for ckpt in jobs.checkpoints(session, job.id):
        prefixes.append(ckpt.blob_prefix)
        session.delete(ckpt)
    job.model_deleted_at = utcnow()
    add_event(session, job.id, "model.deleted", f"Model {model_id} deleted ({len(prefixes)} checkpoints removed)")
    session.flush()
    blobs = ctx.blobs
    after_commit(session, lambda: [blobs.delete_prefix(p) for p in prefixes])
    return {"id": model_id, "object": "model", "deleted": True}
