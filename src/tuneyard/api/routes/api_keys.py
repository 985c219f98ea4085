"""``/v1/api_keys``: create (plaintext once), list (prefix only), revoke."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tuneyard.api.deps import PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.services import orgs
from tuneyard.services.pagination import page
from tuneyard.store.models import ApiKey

router = APIRouter(prefix="/v1/api_keys", tags=["api_keys"])


class CreateApiKey(BaseModel):
    name: str = Field(default="default", max_length=200)
    kind: str = "user"
    deployment_id: str | None = Field(default=None, max_length=40)
    expires_in_seconds: int | None = None
    workspace_id: str | None = None


def key_json(key: ApiKey) -> dict:
    return {
        "id": key.id, "object": "api_key", "name": key.name, "kind": key.kind,
        "key_prefix": key.key_prefix, "deployment_id": key.deployment_id,
        "created_at": iso(key.created_at), "last_used_at": iso(key.last_used_at),
        "expires_at": iso(key.expires_at), "revoked": key.revoked_at is not None,
    }


@router.post("", status_code=201)
def create_api_key(body: CreateApiKey, principal: PrincipalDep, session: SessionDep) -> dict:
    key, plaintext = orgs.create_key(session, principal.org_id, body.name, kind=body.kind,
                                     deployment_id=body.deployment_id,
                                     expires_in_seconds=body.expires_in_seconds)
    return {**key_json(key), "key": plaintext}


@router.get("")
def list_api_keys(principal: PrincipalDep, session: SessionDep, limit: int = Query(20),
                  after: str | None = None) -> dict:
    rows, has_more = page(session, orgs.list_keys_query(principal.org_id), ApiKey, limit=limit, after=after)
    return list_envelope([key_json(k) for k in rows], has_more)


@router.delete("/{key_id}")
def revoke_api_key(key_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    key = orgs.revoke_key(session, principal.org_id, key_id)
    return {**key_json(key), "deleted": True, "revoked_at": iso(key.revoked_at)}
