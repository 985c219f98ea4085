"""``/v1/me``: who the key belongs to (the veri CLI's ``whoami`` and ``doctor`` read it)."""

from __future__ import annotations

from fastapi import APIRouter

from tuneyard.api.deps import PrincipalDep, SessionDep
from tuneyard.services import orgs

router = APIRouter(prefix="/v1", tags=["meta"])


@router.get("/me")
def me(principal: PrincipalDep, session: SessionDep) -> dict:
    org = orgs.get_org(session, principal.org_id)
    return {"object": "user", "user_id": principal.key_id, "email": None, "org_id": org.id,
            "organization_name": org.name, "plan": org.plan, "api_key_id": principal.key_id}
