"""``POST /v1/deployments/{id}/chat/completions``: the OpenAI-compatible endpoint of a deployment.

Async, and it touches the database once (the caller's key and the deployment's route, in one
short read on a worker thread); the proxying itself is inference.gateway.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tuneyard.api.deps import bearer_token
from tuneyard.context import Context
from tuneyard.inference import gateway
from tuneyard.services import deployments, orgs

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])


def _authorize_and_route(ctx: Context, token: str | None, deployment_id: str) -> deployments.Route:
    """A read-only unit of work, so that on SQLite inference requests never queue for the write lock;
    only the key's once-a-minute ``last_used_at`` update is written, in a short session of its own."""
    with ctx.db.session(readonly=True) as session:
        principal = orgs.authenticate(session, token)
        touched = bool(session.dirty)
        session.rollback()
        route = deployments.route(session, principal.org_id, deployment_id)
    if touched:
        with ctx.db.session() as session:
            orgs.authenticate(session, token)
    return route


@router.post("/{deployment_id}/chat/completions")
async def chat_completions(deployment_id: str, request: Request):
    ctx: Context = request.app.state.ctx
    route = await run_in_threadpool(_authorize_and_route, ctx, bearer_token(request), deployment_id)
    return await gateway.forward(request, route, request_log(request))


def request_log(request: Request):
    """The process's request log writer (started with the app; created here on first use otherwise)."""
    log = getattr(request.app.state, "request_log", None)
    if log is None:
        from tuneyard.services.request_log import RequestLog

        ctx: Context = request.app.state.ctx
        log = RequestLog(ctx.db, ctx.settings.request_log_flush_seconds)
        log.start()
        request.app.state.request_log = log
    return log
