"""The gateway: forwards an OpenAI request to the deployment's worker and relays the answer.

It stays out of the body's way: the request bytes go to the worker unparsed (the worker validates
them and answers 400 itself), a JSON answer comes back whole and a stream is relayed chunk by
chunk as it arrives. What the request log needs (tokens, finish reason) the worker sends in an
``X-Tuneyard-Stats`` header, or for a stream in a trailing SSE comment (``: tuneyard-stats {...}``)
that SSE clients ignore. When the caller disconnects mid-stream, the upstream connection is closed
at once, and the worker aborts the generation, which frees its batch slot.

Connections to workers are pooled (one ``httpx.AsyncClient`` per event loop, keep-alive).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tuneyard.errors import Unavailable
from tuneyard.ids import new_id
from tuneyard.inference import worker_auth
from tuneyard.services.deployments import Route, not_serving
from tuneyard.services.request_log import RequestLog, RequestRecord
from tuneyard.store.models import utcnow

_STATS = b": tuneyard-stats "
_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(timeout=httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=60.0),
                                   limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
        _clients[loop] = client
    return client


async def close_clients() -> None:
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()


class _Timer:
    def __init__(self, route: Route, log: RequestLog):
        self.route, self.log = route, log
        self.id = new_id("request")
        self.t0 = time.perf_counter()
        self.created_at = utcnow()
        self.first: float | None = None

    def record(self, status: int, stats: dict | None = None, *, streamed: bool = False, error: str | None = None,
               disconnected: bool = False) -> None:
        end = time.perf_counter()
        stats = stats or {}
        latency = (end - self.t0) * 1000
        ttft = (self.first - self.t0) * 1000 if self.first is not None else None
        completion = int(stats.get("completion_tokens") or 0)
        tpot = None
        if ttft is not None and completion > 1:
            tpot = (latency - ttft) / (completion - 1)
        elif not streamed and completion and status < 400:
            tpot = latency / completion
        self.log.submit(RequestRecord(
            id=self.id, deployment_id=self.route.id, org_id=self.route.org_id, status_code=status,
            latency_ms=round(latency, 3), ttft_ms=round(ttft, 3) if ttft is not None else None,
            tpot_ms=round(tpot, 3) if tpot is not None else None, prompt_tokens=int(stats.get("prompt_tokens") or 0),
            completion_tokens=completion, streamed=streamed, finish_reason=stats.get("finish_reason"),
            error_message=error, client_disconnected=disconnected, created_at=self.created_at,
            completed_at=self.created_at + timedelta(milliseconds=latency)))


def _error_text(content: bytes) -> str:
    try:
        return json.loads(content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return content[:500].decode("utf-8", "replace")


async def forward(request: Request, route: Route, log: RequestLog) -> Response:
    """Forward a chat completion to ``route``'s worker; raise ``Unavailable`` (503) when it cannot."""
    timer = _Timer(route, log)
    if route.status != "serving" or not route.worker_url:
        exc = not_serving(route)
        timer.record(503, error=exc.message)
        raise exc
    body = await request.body()
    client = _client()
    headers = {"content-type": "application/json", "x-request-id": timer.id}
    if route.worker_auth:  # a remote worker: it wants its token
        headers.update(worker_auth.headers(request.app.state.ctx.settings, route.id, route.worker_auth))
    upstream_req = client.build_request("POST", route.worker_url + "/v1/chat/completions", content=body,
                                        headers=headers)
    try:
        upstream = await client.send(upstream_req, stream=True)
    except httpx.TransportError as exc:
        message = f"Deployment {route.id} did not answer ({type(exc).__name__}); try again shortly"
        timer.record(503, error=message)
        raise Unavailable(message, code="upstream_unavailable", headers={"Retry-After": "5"}) from None
    if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
        try:
            content = await upstream.aread()
        finally:
            await upstream.aclose()
        stats = json.loads(upstream.headers.get("x-tuneyard-stats") or "{}")
        timer.first = None
        timer.record(upstream.status_code, stats,
                     error=_error_text(content) if upstream.status_code >= 400 else None)
        return Response(content, status_code=upstream.status_code,
                        media_type=upstream.headers.get("content-type", "application/json"))
    return StreamingResponse(_relay(upstream, timer), status_code=upstream.status_code,
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _relay(upstream: httpx.Response, timer: _Timer):
    tail = b""
    pieces = 0  # content deltas relayed: the token count when the stream ends early (~1 token each)
    complete = False
    try:
        async for chunk in upstream.aiter_raw():
            if timer.first is None:
                timer.first = time.perf_counter()
            tail = (tail + chunk)[-2048:]
            pieces += chunk.count(b'"content":"')
            yield chunk
        complete = True
    finally:
        with anyio.CancelScope(shield=True):  # the caller went away: still close upstream (aborts generation)
            await upstream.aclose()
        stats = _stats_from(tail) or {"completion_tokens": pieces}
        timer.record(200, stats, streamed=True, disconnected=not complete,
                     error=None if complete else "client disconnected")


def _stats_from(tail: bytes) -> dict:
    at = tail.rfind(_STATS)
    if at < 0:
        return {}
    line = tail[at + len(_STATS):].split(b"\n", 1)[0]
    try:
        return json.loads(line)
    except ValueError:
        return {}
