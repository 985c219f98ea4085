"""``/api/v1/balance/*`` (and the ``/api/balance/*`` aliases ``synth-ai balance`` reaches): the ledger."""

from __future__ import annotations

from fastapi import APIRouter

from tuneyard.api.deps import PrincipalDep, SessionDep
from tuneyard.services import usage_windows


def _router(prefix: str, include_in_schema: bool) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["synth: balance"], include_in_schema=include_in_schema)

    @router.get("/current")
    def current(principal: PrincipalDep, session: SessionDep) -> dict:
        return usage_windows.balance(session, principal.org_id)

    @router.get("/usage")
    def usage(principal: PrincipalDep, session: SessionDep) -> dict:
        return usage_windows.usage(session, principal.org_id)

    @router.get("/usage/windows")
    def windows(principal: PrincipalDep, session: SessionDep, hours: str | None = None) -> dict:
        return usage_windows.windows(session, principal.org_id, usage_windows.parse_hours(hours))

    return router


routers = [_router("/api/v1/balance", True), _router("/api/balance", False)]
