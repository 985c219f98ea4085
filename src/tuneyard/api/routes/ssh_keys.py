"""``/v1/ssh_keys``: upload a key pair (encrypted at rest), list, delete. Key material never leaves."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.services import ssh_keys
from tuneyard.services.pagination import owned, page
from tuneyard.store.models import SshKey

router = APIRouter(prefix="/v1/ssh_keys", tags=["ssh_keys"])


class CreateSshKey(BaseModel):
    name: str = Field(max_length=200)
    public_key: str = Field(max_length=20_000)
    private_key: str = Field(max_length=50_000)
    provider: str | None = Field(default=None, max_length=60)


def ssh_key_json(k: SshKey) -> dict:
    return {"id": k.id, "object": "ssh_key", "name": k.name, "provider": k.provider,
            "fingerprint": k.fingerprint, "key_type": k.key_type, "created_at": iso(k.created_at)}


@router.post("", status_code=201)
def create_ssh_key(body: CreateSshKey, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    key = ssh_keys.create(session, ctx.settings, principal.org_id, name=body.name,
                          public_key=body.public_key, private_key=body.private_key, provider=body.provider)
    return ssh_key_json(key)


@router.get("")
def list_ssh_keys(principal: PrincipalDep, session: SessionDep, limit: int = Query(20),
                  after: str | None = None) -> dict:
    rows, has_more = page(session, owned(SshKey, principal.org_id), SshKey, limit=limit, after=after)
    return list_envelope([ssh_key_json(k) for k in rows], has_more)


@router.get("/{key_id}")
def get_ssh_key(key_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    return ssh_key_json(ssh_keys.get(session, principal.org_id, key_id))


@router.delete("/{key_id}")
def delete_ssh_key(key_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    key = ssh_keys.delete(session, principal.org_id, key_id)
    return {"id": key.id, "object": "ssh_key", "deleted": True}
