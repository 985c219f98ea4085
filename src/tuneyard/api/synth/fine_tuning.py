"""``/api/v1/fine_tuning/jobs``: OpenAI fine-tuning jobs over training jobs (services/fine_tuning).

``router`` is mounted (api/synth/__init__.py) at ``/api/v1/fine_tuning/jobs`` and at the aliases
``/api/sft/jobs`` (synth-ai's ``JobsClient``) and ``/api/learning/jobs`` (``LearningClient``,
``FtClient``, ``JobHandle``). What those clients spell differently is read here, in one place each:
``training_file_id`` for ``training_file``; ``since_seq`` on the events list (oldest first after that
``seq``, also returned as ``events``); ``Accept: text/event-stream`` for ``stream=true``. The learning
API's ``/start`` and ``/metrics`` are ``learning_router``; ``/{file}/jobs`` and ``/{model}/jobs`` (the
``JobsClient``) are the job list filtered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.synth.common import json_body, openai_list, openai_page, parse
from tuneyard.context import Context
from tuneyard.errors import Conflict, InvalidRequest
from tuneyard.services import fine_tuning, gpu_preference, openai_files, synth_models
from tuneyard.services.job_feed import status as job_status
from tuneyard.services.job_states import TERMINAL
from tuneyard.services.openai_ids import to_openai
from tuneyard.store.models import TrainingJob

router = APIRouter(tags=["synth: fine-tuning"])
learning_router = APIRouter(tags=["synth: fine-tuning"])
file_jobs_router = APIRouter(tags=["synth: fine-tuning"])
model_jobs_router = APIRouter(tags=["synth: fine-tuning"])
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class CreateFineTuningJob(BaseModel):
    # Unknown keys (integrations, metadata, extra_body leftovers) are ignored.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=300)
    # synth-ai's learning clients send ``training_file_id``.
    training_file: str = Field(min_length=1, validation_alias=AliasChoices("training_file", "training_file_id"))
    validation_file: str | None = None
    training_type: str | None = None
    method: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None
    suffix: str | None = None
    seed: int | None = None
    gpu: str | dict[str, Any] | None = None
    gpu_preference: str | None = None


def _gpu(ctx: Context, body: dict, header: str | None, query: str | None) -> dict | None:
    """A GPU shape for the job: ``gpu`` as ``{type,count}`` / ``{gpu_type,gpu_count}``, or a Synth preference."""
    if isinstance(body.get("gpu"), dict):
        return body["gpu"]
    raw = gpu_preference.from_request(header, query or (body.get("gpu") if isinstance(body.get("gpu"), str) else None),
                                      body)
    if raw is None:
        return None
    place = gpu_preference.placement(ctx.settings, raw)
    return {"type": place["type"], "count": place["count"]}


@router.post("")
async def create_job(request: Request, principal: PrincipalDep, ctx: CtxDep, gpu: str | None = None,
                     x_gpu_preference: str | None = Header(None)) -> dict:
    body = await json_body(request)
    req = parse(CreateFineTuningJob, body)
    shape = _gpu(ctx, body, x_gpu_preference, gpu)

    def create() -> dict:
        with ctx.db.session() as session:
            job = fine_tuning.create(session, ctx.settings, principal.org_id, fine_tuning.FineTuneRequest(
                model=req.model, training_file=req.training_file, validation_file=req.validation_file,
                training_type=req.training_type, method=req.method, hyperparameters=req.hyperparameters or {},
                suffix=req.suffix, seed=req.seed, gpu=shape))
            session.flush()
            return fine_tuning.job_json(session, ctx.settings, job)

    return await run_in_threadpool(create)


@router.get("")
def list_jobs(principal: PrincipalDep, session: SessionDep, ctx: CtxDep, limit: int = Query(20),
              after: str | None = None, status: str | None = None, model: str | None = None,
              file_id: str | None = None, created_after: int | None = None,
              created_before: int | None = None) -> dict:
    stmt = fine_tuning.list_query(principal.org_id, status=status, model=model, file_id=file_id,
                                  created_after=created_after, created_before=created_before)
    rows, has_more = openai_page(session, stmt, TrainingJob, kind="job", limit=limit, after=after)
    return openai_list([fine_tuning.job_json(session, ctx.settings, j) for j in rows], has_more)


@file_jobs_router.get("/{file_id}/jobs")
def list_file_jobs(file_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                   limit: int = Query(20), after: str | None = None) -> dict:
    """The jobs that train (or validate) on this file."""
    openai_files.get(session, principal.org_id, file_id)  # 404 for a file that is not there
    return list_jobs(principal, session, ctx, limit=limit, after=after, file_id=file_id)


@model_jobs_router.get("/{model_id:path}/jobs")
def list_model_jobs(model_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                    limit: int = Query(20), after: str | None = None) -> dict:
    """The jobs that start from this base model or produced this fine-tuned model."""
    synth_models.get(session, principal.org_id, model_id)  # 404 for a model that is not there
    return list_jobs(principal, session, ctx, limit=limit, after=after, model=model_id)


@router.get("/{job_id}")
def get_job(job_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    return fine_tuning.job_json(session, ctx.settings, fine_tuning.get(session, principal.org_id, job_id))


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    job = fine_tuning.cancel(session, principal.org_id, job_id)
    session.flush()
    return fine_tuning.job_json(session, ctx.settings, job)


def _read(ctx: Context, fn, *args):
    with ctx.db.session(readonly=True) as s:
        return fn(s, *args)


async def _follow(ctx: Context, request: Request, job_id: str, cursor: int) -> AsyncIterator[str]:
    """``data: {event}`` per event, oldest first, until the job is terminal; then ``data: [DONE]``."""
    last_sent = time.monotonic()
    while True:
        state = await run_in_threadpool(_read, ctx, job_status, job_id)
        rows = await run_in_threadpool(_read, ctx, fine_tuning.events_after, job_id, cursor)
        for e in rows:
            cursor = e.seq_in_job
            yield f"id: {e.seq_in_job}\ndata: {json.dumps(fine_tuning.event_json(e))}\n\n"
            last_sent = time.monotonic()
        if rows:
            continue
        if state in TERMINAL:
            yield "data: [DONE]\n\n"
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield ": ping\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


@router.get("/{job_id}/events")
def list_events(job_id: str, request: Request, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                after: str | None = None, limit: int = Query(20), stream: bool = False,
                since_seq: int | None = Query(None, ge=0)):
    """OpenAI's page (newest first, ``after``); with ``since_seq`` (synth-ai) the events after that ``seq``,
    oldest first, in ``data`` and again in ``events``. ``stream=true`` or ``Accept: text/event-stream``: SSE."""
    job = fine_tuning.get(session, principal.org_id, job_id)
    if stream or "text/event-stream" in request.headers.get("accept", ""):
        start = since_seq if since_seq is not None else fine_tuning.stream_start(session, job.id, after)
        return StreamingResponse(_follow(ctx, request, job.id, start), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    if since_seq is not None:
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000", param="limit")
        rows = fine_tuning.events_after(session, job.id, since_seq, limit + 1)
        data = [fine_tuning.event_json(e) for e in rows[:limit]]
        return {**openai_list(data, len(rows) > limit), "events": data}
    rows, has_more = fine_tuning.events_page(session, job.id, after, limit)
    return openai_list([fine_tuning.event_json(e) for e in rows], has_more)


@router.get("/{job_id}/checkpoints")
def list_checkpoints(job_id: str, principal: PrincipalDep, session: SessionDep, after: str | None = None,
                     limit: int = Query(10)) -> dict:
    job = fine_tuning.get(session, principal.org_id, job_id)
    rows, has_more = fine_tuning.checkpoints_page(session, job, after, limit)
    return openai_list([fine_tuning.checkpoint_json(job, c) for c in rows], has_more)


# ---- the learning API's extras (/api/learning/jobs only) -----------------------------------------

@learning_router.post("/{job_id}/start")
def start_job(job_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    """A job is queued when it is created, so starting it changes nothing: the job as it is, or a 409
    when it already ended (a cancelled or failed job is not started again)."""
    job = fine_tuning.get(session, principal.org_id, job_id)
    if job.status in ("failed", "cancelled"):
        raise Conflict(f"Fine-tuning job {job_id!r} is {job.status} and cannot be started", param="job_id",
                       code="job_not_startable")
    return fine_tuning.job_json(session, ctx.settings, job)


@learning_router.get("/{job_id}/metrics")
def job_metrics(job_id: str, principal: PrincipalDep, session: SessionDep, name: str | None = None,
                after_step: int | None = None, limit: int = Query(500), run_id: str | None = None) -> dict:
    """``{"points": [{name, step, value, created_at}]}`` from the job's metrics events (``run_id`` is ignored:
    a job is one run)."""
    job = fine_tuning.get(session, principal.org_id, job_id)
    points = fine_tuning.metric_points(session, job.id, name=name, after_step=after_step, limit=limit)
    return {"object": "list", "job_id": to_openai("job", job.id), "points": points}
