"""Job logs and events: lists, full text, and live SSE streams.

Log SSE follows what the veri clients expect: ``data: <line>`` per line (``id:`` = line number,
so ``Last-Event-ID`` resumes), ``: keepalive`` comments while idle, ``data: [Job <status>]`` once
the job is terminal, then the stream closes. 400 while no runner has been assigned yet.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso
from tuneyard.context import Context
from tuneyard.errors import InvalidRequest
from tuneyard.services import jobs
from tuneyard.services.job_feed import event_seq, events, log_lines, status
from tuneyard.services.job_states import TERMINAL
from tuneyard.services.pagination import check_limit
from tuneyard.store.models import JobEvent

router = APIRouter(prefix="/v1/training_jobs", tags=["training_jobs"])
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_json(e: JobEvent) -> dict:
    return {"id": e.id, "object": "training_job.event", "seq": e.seq_in_job, "type": e.type, "level": e.level,
            "message": e.message, "data": e.data, "created_at": iso(e.created_at)}


def _read(ctx: Context, fn, *args):
    with ctx.db.session(readonly=True) as s:
        return fn(s, *args)


async def _follow(ctx: Context, request: Request, job_id: str, fetch, render, cursor: int) -> AsyncIterator[str]:
    """Poll ``fetch(session, job_id, cursor)`` until the job is terminal and everything is sent."""
    last_sent = time.monotonic()
    while True:
        job_status = await run_in_threadpool(_read, ctx, status, job_id)
        rows = await run_in_threadpool(_read, ctx, fetch, job_id, cursor)
        for row in rows:
            cursor, text = render(row)
            yield text
            last_sent = time.monotonic()
        if rows:
            continue
        if job_status in TERMINAL:
            yield f"data: [Job {job_status}]\n\n"
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


def _log_event(line) -> tuple[int, str]:
    return line.line_no, f"id: {line.line_no}\ndata: {line.text}\n\n"


@router.get("/{job_id}/logs")
def stream_logs(job_id: str, request: Request, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                last_event_id: str | None = Header(None)):
    job = jobs.get(session, principal.org_id, job_id)
    if job.status == "queued":
        raise InvalidRequest("Job has not been submitted yet: waiting for a runner", code="job_pending")
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    body = _follow(ctx, request, job.id, log_lines, _log_event, start)
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/{job_id}/logs/full")
def full_logs(job_id: str, principal: PrincipalDep, session: SessionDep) -> PlainTextResponse:
    job = jobs.get(session, principal.org_id, job_id)
    lines, cursor = [], 0
    while batch := log_lines(session, job.id, cursor, 5000):
        lines.extend(line.text for line in batch)
        cursor = batch[-1].line_no
    if not lines:
        return PlainTextResponse("no logs yet", status_code=404)
    return PlainTextResponse("\n".join(lines) + "\n", status_code=200 if job.status in TERMINAL else 206)


@router.get("/{job_id}/events")
def list_events(job_id: str, request: Request, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                after: str | None = None, limit: int = Query(100), stream: bool = False):
    job = jobs.get(session, principal.org_id, job_id)
    check_limit(limit)
    cursor = event_seq(session, job.id, after)
    if stream:
        def render(e: JobEvent) -> tuple[int, str]:
            return e.seq_in_job, f"id: {e.seq_in_job}\ndata: {json.dumps(event_json(e))}\n\n"

        body = _follow(ctx, request, job.id, events, render, cursor)
        return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)
    rows = events(session, job.id, cursor, limit + 1)
    data = [event_json(e) for e in rows[:limit]]
    return {"object": "list", "data": data, "has_more": len(rows) > limit}
