"""``/v1/reward_functions``: multipart upload (``file``, ``name``, ``format``), list, get, delete."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Query, UploadFile

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.services import rewards
from tuneyard.services.pagination import owned, page
from tuneyard.store.models import RewardFunction

router = APIRouter(prefix="/v1/reward_functions", tags=["reward_functions"])


def reward_json(rf: RewardFunction, source: str | None = None) -> dict:
    body = {"id": rf.id, "object": "reward_function", "name": rf.name, "format": rf.format,
            "entrypoint": rf.entrypoint, "filename": rf.filename, "bytes": rf.bytes, "sha256": rf.sha256,
            "created_at": iso(rf.created_at)}
    if source is not None:
        body["source"] = source
    return body


@router.post("", status_code=201)
def upload_reward_function(principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                           file: UploadFile = File(...), name: str | None = Form(None),
                           format: str = Form("trl")) -> dict:
    rf = rewards.create(session, ctx.blobs, principal.org_id, name=name or "", fmt=format,
                        filename=file.filename, stream=file.file)
    return reward_json(rf)


@router.get("")
def list_reward_functions(principal: PrincipalDep, session: SessionDep, limit: int = Query(20),
                          after: str | None = None) -> dict:
    rows, has_more = page(session, owned(RewardFunction, principal.org_id), RewardFunction,
                          limit=limit, after=after)
    return list_envelope([reward_json(r) for r in rows], has_more)


@router.get("/{rf_id}")
def get_reward_function(rf_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                        include_source: bool = True) -> dict:
    rf = rewards.get(session, principal.org_id, rf_id)
    return reward_json(rf, rewards.source(ctx.blobs, rf) if include_source else None)


@router.delete("/{rf_id}")
def delete_reward_function(rf_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    rf = rewards.delete(session, ctx.blobs, principal.org_id, rf_id)
    return {"id": rf.id, "object": "reward_function", "deleted": True}
