"""The FastAPI application: both API surfaces, error handling, request ids, ``/health``."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from tuneyard import __version__
from tuneyard.api import dashboard
from tuneyard.api.errors import install_error_handlers
from tuneyard.api.routes import (
    api_keys,
    billing,
    blobs,
    cost,
    datasets,
    datasets_connect,
    deployment_gateway,
    deployments,
    job_streams,
    me,
    models,
    reward_functions,
    ssh_keys,
    training_jobs,
)
from tuneyard.api.synth import routers as synth_routers
from tuneyard.context import Context
from tuneyard.services.warm_models import Keeper


class RequestIdMiddleware:
    """Echo the caller's ``X-Request-Id`` or mint one, on every response (pure ASGI: no buffering)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:100]
        request_id = incoming or f"req_{uuid.uuid4().hex[:24]}"

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(ctx: Context | None = None) -> FastAPI:
    ctx = ctx or Context.from_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Sync routes run on AnyIO worker threads (40 by default). With SQLite, requests waiting for
        # the write lock each hold a thread while the lock holder needs one more to finish its
        # response: a burst of 40+ writers would stall until the busy timeout. Size the pool for bursts.
        anyio.to_thread.current_default_thread_limiter().total_tokens = ctx.settings.api_threads
        worker = None
        if ctx.settings.embedded_worker:
            from tuneyard.scheduler.worker import Worker

            worker = Worker(ctx)
            worker.start()
        app.state.worker = worker
        serving = _start_serving(app, ctx)
        warm_keeper = Keeper(ctx).start()  # unloads idle on-demand models of /api/v1
        yield
        warm_keeper.stop()
        await _stop_serving(app, serving)
        if worker:
            worker.stop()

    app = FastAPI(title="tuneyard", version=__version__, lifespan=lifespan,
                  description="Self-hosted post-training and OpenAI-compatible serving for open LLMs.")
    app.state.ctx = ctx
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/health", tags=["meta"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    for module in (api_keys, datasets, datasets_connect, reward_functions, ssh_keys, training_jobs, job_streams,
                   blobs, models,
                   billing, cost, me):
        app.include_router(module.router)
    app.include_router(deployments.router)
    app.include_router(deployment_gateway.router)
    for router in synth_routers:  # /api/v1 and the /api aliases (docs/synth-api.md)
        app.include_router(router)
    dashboard.install(app)  # the web dashboard at / (files under tuneyard/web)
    return app


def _start_serving(app: FastAPI, ctx: Context):
    """The deployment request log writer, and (embedded mode) the deployment supervisor."""
    from tuneyard.services.request_log import RequestLog

    app.state.request_log = RequestLog(ctx.db, ctx.settings.request_log_flush_seconds)
    app.state.request_log.start()
    if not ctx.settings.embedded_worker:
        return None
    from tuneyard.inference.supervisor import Supervisor

    supervisor = Supervisor(ctx)
    supervisor.start()
    return supervisor


async def _stop_serving(app: FastAPI, supervisor) -> None:
    from tuneyard.inference import gateway

    await gateway.close_clients()
    app.state.request_log.stop()
    if supervisor:
        supervisor.stop()
