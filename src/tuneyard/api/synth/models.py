"""``/api/v1/models``: OpenAI's model list plus the Synth extras (GPUs, fine-tunes, local registry).

Mounted (api/synth/__init__.py) at ``/api/v1/models``, at ``/api/models`` (synth-ai's ``JobsClient``,
which also reads ``/api/models/{id}/jobs``) and at ``/api/learning/models``, whose list is the
``fine_tuned_models`` part only (what ``LearningClient.list_fine_tuned_models`` reads as ``data``).
"""

from __future__ import annotations

from fastapi import APIRouter

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.synth.common import openai_list
from tuneyard.services import synth_models

listing = APIRouter(tags=["synth: models"])
items = APIRouter(tags=["synth: models"])
learning_listing = APIRouter(tags=["synth: models"])


@listing.get("")
def list_models(principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    return synth_models.listing(session, ctx.settings, principal.org_id)


@learning_listing.get("")
def list_fine_tuned_models(principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    """The learning API's shape: ``data`` = the organization's fine-tunes (``id, base_model, created_at,
    job_id, status``), the same items ``/api/v1/models`` lists under ``fine_tuned_models``."""
    full = synth_models.listing(session, ctx.settings, principal.org_id)
    return {**openai_list(full["fine_tuned_models"], False), "organization_id": full["organization_id"]}


@items.get("/{model_id:path}")
def get_model(model_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    return synth_models.get(session, principal.org_id, model_id)


@items.delete("/{model_id:path}")
def delete_model(model_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    return synth_models.delete(session, ctx, principal.org_id, model_id)
