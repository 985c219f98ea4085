"""``/api/v1/models``: OpenAI's model list plus the Synth extras (GPUs, fine-tunes, local registry)."""

from __future__ import annotations

from fastapi import APIRouter

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.services import synth_models

router = APIRouter(prefix="/api/v1/models", tags=["synth: models"])


@router.get("")
def list_models(principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    return synth_models.listing(session, ctx.settings, principal.org_id)


@router.get("/{model_id:path}")
def get_model(model_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    return synth_models.get(session, principal.org_id, model_id)


@router.delete("/{model_id:path}")
def delete_model(model_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    return synth_models.delete(session, ctx, principal.org_id, model_id)
