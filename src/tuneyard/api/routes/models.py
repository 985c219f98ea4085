"""``/v1/models``: what can be trained and served here (bundled, cached, completed fine-tunes)."""

from __future__ import annotations

from fastapi import APIRouter

from tuneyard.api.deps import PrincipalDep, SessionDep
from tuneyard.api.schemas import iso
from tuneyard.services import catalog

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models")
def list_models(principal: PrincipalDep, session: SessionDep) -> dict:
    data = [{"id": m["id"], "object": "model", "type": "base", "source": m["source"], "trainable": True,
             "servable": True} for m in catalog.base_models()]
    for job in catalog.fine_tunes(session, principal.org_id):
        data.append({"id": job.output_name, "object": "model", "type": "fine_tune", "source": "training_job",
                     "base_model": job.base_model, "job_id": job.id, "method": job.method,
                     "created_at": iso(job.completed_at), "trainable": False, "servable": True})
    return {"object": "list", "data": data, "has_more": False}
