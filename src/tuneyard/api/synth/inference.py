"""``/api/v1/chat/completions``, ``/api/v1/responses`` and warmup: inference by *model* name.

The model (a base model id, an ``ft:`` fine-tune, or one of the organization's deployments by name
or id) is mapped to a deployment by services/warm_models (a cold model is queued as an on-demand
deployment and this request waits while it loads); the request then goes through the same gateway
as ``/v1/deployments/{id}/chat/completions`` (inference/gateway.py), so request logs, metrics and
billing are the deployment's. Synth-only body keys (``gpu_preference``, ``extra_headers``,
``extra_body``, ``thinking_*``) are read for the GPU preference and dropped before forwarding.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneyard.api.deps import bearer_token
from tuneyard.api.routes.deployment_gateway import request_log
from tuneyard.api.synth.common import json_body
from tuneyard.context import Context
from tuneyard.errors import InvalidRequest, Unavailable
from tuneyard.inference import gateway
from tuneyard.inference.chat_schema import InvalidChatRequest, parse_request
from tuneyard.services import gpu_preference, orgs, responses_api, warm_models
from tuneyard.services.deployments import Route

router = APIRouter(prefix="/api/v1", tags=["synth: inference"])
SYNTH_ONLY_KEYS = ("gpu_preference", "extra_headers", "extra_body", "thinking_mode", "thinking_budget")
POLL_SECONDS = 0.5
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _Forward:
    """What ``gateway.forward`` reads from a request: its body (here, the rewritten one)."""

    def __init__(self, body: dict[str, Any]):
        self._content = json.dumps(body).encode()

    async def body(self) -> bytes:
        return self._content


def _authenticate(ctx: Context, request: Request) -> str:
    with ctx.db.session() as s:
        return orgs.authenticate(s, bearer_token(request)).org_id


def _ensure(ctx: Context, org_id: str, model: str, gpu: dict, touch: bool = False) -> warm_models.Warm:
    if not touch:
        with ctx.db.session(readonly=True) as s:  # the common case: already deployed, no write
            dep = warm_models.find_active(s, org_id, model)
            if dep is not None:
                return warm_models.Warm(dep.id, dep.status, False, {"type": dep.gpu_type, "count": dep.gpu_count})
    with ctx.db.session() as s:
        return warm_models.ensure(s, ctx.settings, org_id, model, gpu, touch=touch)


def _route(ctx: Context, org_id: str, deployment_id: str):
    with ctx.db.session(readonly=True) as s:
        return warm_models.route_status(s, org_id, deployment_id)


async def _wait_serving(ctx: Context, request: Request, org_id: str, model: str, deployment_id: str) -> Route:
    """The deployment's route once it serves (a cold model loads meanwhile)."""
    deadline = time.monotonic() + ctx.settings.synth_cold_start_timeout_seconds
    while True:
        route, error = await run_in_threadpool(_route, ctx, org_id, deployment_id)
        if route.status == "serving" and route.worker_url:
            return route
        if error is not None:
            raise Unavailable(f"Model {model!r} could not be loaded: {error}", code="model_load_failed",
                              headers={"Retry-After": "5"})
        if time.monotonic() > deadline or await request.is_disconnected():
            raise Unavailable(f"Model {model!r} is still loading (deployment {deployment_id}); try again shortly",
                              code="model_loading", headers={"Retry-After": "10"})
        await asyncio.sleep(POLL_SECONDS)


async def _prepare(request: Request, gpu_query: str | None) -> tuple[str, dict[str, Any], dict]:
    """(organization, JSON body, GPU placement), after auth and the checks that need no model."""
    ctx: Context = request.app.state.ctx
    org_id = await run_in_threadpool(_authenticate, ctx, request)
    body = await json_body(request)
    raw = gpu_preference.from_request(request.headers.get(gpu_preference.HEADER), gpu_query, body)
    place = gpu_preference.placement(ctx.settings, raw)
    model = body.get("model")
    if model is None or (isinstance(model, str) and not model.strip()):
        raise InvalidRequest("Missing required parameter: 'model'", param="model", code="missing_required_parameter")
    if not isinstance(model, str):
        raise InvalidRequest("Invalid value for 'model': it must be a string", param="model")
    return org_id, body, place


def _check(chat_body: dict) -> None:
    """The engine's own request checks, here, so a bad request never loads a cold model."""
    try:
        parse_request(chat_body)
    except InvalidChatRequest as exc:
        raise InvalidRequest(exc.message, param=exc.param, code=exc.code) from None


async def _serve(request: Request, org_id: str, model: str, place: dict, chat_body: dict) -> Response:
    ctx: Context = request.app.state.ctx
    _check(chat_body)
    warm = await run_in_threadpool(_ensure, ctx, org_id, model.strip(), place)
    route = await _wait_serving(ctx, request, org_id, model, warm.deployment_id)
    response = await gateway.forward(_Forward(chat_body), route, request_log(request))
    response.headers["X-Tuneyard-Deployment"] = route.id
    response.headers["X-GPU-Assigned"] = warm.gpu["type"]
    return response


def _with_detail(response: Response) -> Response:
    """A worker's error body (OpenAI's shape) with ``detail`` too, as every /api error has."""
    if response.status_code < 400 or isinstance(response, StreamingResponse):
        return response
    try:
        body = json.loads(response.body)
        body.setdefault("detail", body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response
    return JSONResponse(body, status_code=response.status_code, headers={
        k: v for k, v in response.headers.items() if k.lower().startswith("x-")})


@router.post("/chat/completions")
async def chat_completions(request: Request, gpu: str | None = None) -> Response:
    org_id, body, place = await _prepare(request, gpu)
    chat = {k: v for k, v in body.items() if k not in SYNTH_ONLY_KEYS}
    return _with_detail(await _serve(request, org_id, body["model"], place, chat))


@router.post("/responses")
async def responses(request: Request, gpu: str | None = None) -> Response:
    org_id, body, place = await _prepare(request, gpu)
    chat = responses_api.to_chat(body)
    upstream = await _serve(request, org_id, body["model"], place, chat)
    if isinstance(upstream, StreamingResponse):
        inner = upstream.body_iterator
        stream = responses_api.ResponseStream(body)

        async def events():
            try:
                async for event in stream.events(inner):
                    yield event
            finally:
                await inner.aclose()

        headers = {**SSE_HEADERS, **{k: v for k, v in upstream.headers.items() if k.lower().startswith("x-")}}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
    if upstream.status_code != 200:
        return _with_detail(upstream)
    result = responses_api.from_chat(json.loads(upstream.body), body)
    return JSONResponse(result, headers={k: v for k, v in upstream.headers.items() if k.lower().startswith("x-")})


# ---- warmup ---------------------------------------------------------------------------------

def _warmup_router(prefix: str, include_in_schema: bool) -> APIRouter:
    r = APIRouter(prefix=prefix, tags=["synth: warmup"], include_in_schema=include_in_schema)

    @r.get("/status/{model_id:path}")
    async def warmup_status(model_id: str, request: Request) -> dict:
        ctx: Context = request.app.state.ctx
        org_id = await run_in_threadpool(_authenticate, ctx, request)

        def read():
            with ctx.db.session(readonly=True) as s:
                return warm_models.status(s, org_id, model_id)

        return {"model_id": model_id, **await run_in_threadpool(read)}

    @r.post("/{model_id:path}")
    async def warmup(model_id: str, request: Request, gpu: str | None = None) -> dict:
        ctx: Context = request.app.state.ctx
        org_id = await run_in_threadpool(_authenticate, ctx, request)
        raw = gpu_preference.from_request(request.headers.get(gpu_preference.HEADER), gpu, None)
        place = gpu_preference.placement(ctx.settings, raw)
        warm = await run_in_threadpool(_ensure, ctx, org_id, model_id, place, True)
        if warm.created:
            status = "warming"
        elif warm.status == "serving":
            status = "already_warmed"
        else:
            status = "already_warming"
        return {"model_id": model_id, "status": status, "deployment_id": warm.deployment_id, "gpu": warm.gpu,
                "gpu_preference": place["preferred"], "gpu_preference_honoured": place["honoured"]}

    return r


routers = [router, _warmup_router("/api/v1/warmup", True), _warmup_router("/api/warmup", False)]
