"""A deployment worker: ``python -m tuneyard.inference.worker --model PATH [--adapter NAME=PATH]...``.

One process per deployment, started by the supervisor (inference/supervisor.py). It loads the
model, then serves on a local port:

* ``POST /v1/chat/completions`` (OpenAI schema, streaming included),
* ``GET /health`` (200 with engine stats once it serves; 500 once the engine has failed),
* ``POST /adapters`` ``{"name", "path"}`` (another LoRA adapter on the same loaded base).

The port is bound before the model loads (connections are refused until it is ready) and written
to ``--state-file`` and printed as a JSON line (``{"type": "worker.bound", ...}``, what a Ray job's log
shows), so the supervisor learns it without races and can re-attach after its own restart. The worker
imports neither api/ nor store/, so it runs the same on any host: on a Ray node or an SSH host the
model and adapters may be blob URLs (``s3://…/``, ``file://…/``), fetched into ``--workdir`` first,
and with ``TUNEYARD_WORKER_TOKEN`` set every request must carry it as a bearer token. When no
supervisor has probed it for ``--orphan-timeout`` seconds it exits: a worker whose control plane
is gone for good should not hold a GPU forever; a supervisor that comes back restarts it.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

log = logging.getLogger("tuneyard.inference.worker")


def build_app(engine, served_name: str, default_adapter: str | None, default_max_tokens: int, watchdog=None):
    from tuneyard.inference.chat import ChatRun, prepare
    from tuneyard.inference.chat_schema import InvalidChatRequest, parse_request

    app = FastAPI(title="tuneyard deployment worker", docs_url=None, redoc_url=None)

    def bad(exc: InvalidChatRequest) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=400)

    @app.get("/health")
    def health():
        if watchdog:
            watchdog.touch()
        error = engine.error()
        body = {"status": "error" if error else "ok", "error": error, "engine": engine.name,
                "model": served_name, "pid": os.getpid(), "stats": engine.stats()}
        return JSONResponse(body, status_code=500 if error else 200)

    @app.post("/adapters")
    async def load_adapter(request: Request):
        body = await request.json()
        try:
            await asyncio.to_thread(engine.load_adapter, str(body["name"]), str(body["path"]))
        except (KeyError, ValueError, OSError) as exc:
            return JSONResponse({"error": {"message": str(exc), "type": "invalid_request_error"}}, status_code=400)
        return {"adapters": engine.adapters()}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        request_id = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex[:24]}"
        try:
            body = json.loads(await request.body())
        except ValueError:
            return bad(InvalidChatRequest("The request body is not valid JSON", code="invalid_json"))
        try:
            req = parse_request(body)
            adapter = req.model if req.model in engine.adapters() else default_adapter
            prepared = prepare(req, engine, request_id=request_id, adapter=adapter,
                               default_max_tokens=default_max_tokens)
        except InvalidChatRequest as exc:
            return bad(exc)
        run = ChatRun(prepared, engine, served_name, request_id)
        if req.stream:
            return StreamingResponse(run.stream(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        result = await run.complete()
        return JSONResponse(result, headers={"X-Tuneyard-Stats": json.dumps(run.stats(), separators=(",", ":"))})

    return app


class TokenAuth:
    """ASGI middleware: 401 unless ``Authorization: Bearer <token>`` (pure ASGI, so streams and client
    disconnects pass through untouched)."""

    def __init__(self, app, token: str):
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = {"error": {"message": "This worker takes requests from its tuneyard gateway only",
                                  "type": "authentication_error", "param": None, "code": "invalid_worker_token"}}
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def localize(value: str, dest: Path) -> str:
    """A model or adapter given as a blob URL (a folder: ``…/``) is fetched to ``dest`` first."""
    from tuneyard.training import staging

    if not staging.is_url(value):
        return value
    if dest.is_dir() and any(dest.iterdir()):  # fetched by an earlier start of this deployment
        return str(dest)
    tmp = dest.with_name(dest.name + ".part")
    staging.fetch(value if value.endswith("/") else value + "/", tmp)
    os.replace(tmp, dest)
    return str(dest)


class Watchdog:
    """Exit when nobody has called /health for ``timeout`` seconds (0 = never)."""

    def __init__(self, timeout: float):
        self.timeout, self.last = timeout, time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def run_in_background(self, on_expire) -> None:
        if self.timeout <= 0:
            return

        def watch():
            while True:
                time.sleep(min(5.0, self.timeout / 4))
                if time.monotonic() - self.last > self.timeout:
                    log.warning("no supervisor probe for %.0f s: shutting down", self.timeout)
                    on_expire()
                    return

        threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuneyard.inference.worker")
    p.add_argument("--model", required=True, help="base model: HF id, local folder, or the bundled model")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH", help="LoRA adapter (repeatable)")
    p.add_argument("--served-name", default=None, help="the model name responses carry")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (see --state-file)")
    p.add_argument("--state-file", type=Path, default=None, help="where to write {pid, host, port}")
    p.add_argument("--engine", default="auto", choices=["auto", "transformers", "vllm"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--default-max-tokens", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--orphan-timeout", type=float, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="where model/adapter URLs are fetched to")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    token = os.environ.pop("TUNEYARD_WORKER_TOKEN", "")  # not inherited by anything the engine starts
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))  # bound, not listening: probes are refused until the model is loaded
    port = sock.getsockname()[1]
    if args.state_file:
        tmp = args.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": args.host, "port": port}))
        os.replace(tmp, args.state_file)
    print(json.dumps({"type": "worker.bound", "pid": os.getpid(), "host": args.host, "port": port}), flush=True)

    import uvicorn

    from tuneyard import modelhub
    from tuneyard.inference.engine import make_engine

    started = time.monotonic()
    workdir = (args.workdir or Path.cwd()).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    adapters = {name: localize(path, workdir / "adapters" / name)
                for name, path in (a.split("=", 1) for a in args.adapter)}
    model_path = str(modelhub.resolve_model(localize(args.model, workdir / "model")).path)
    engine = make_engine(args.engine, model_path, adapters=adapters, device=args.device,
                         max_batch_size=args.max_batch_size, max_model_len=args.max_model_len, threads=args.threads)
    engine.start()
    log.info("%s engine ready in %.1f s (model %s, adapters %s) on port %d", engine.name,
             time.monotonic() - started, args.model, list(adapters) or "none", port)
    watchdog = Watchdog(args.orphan_timeout)
    default_adapter = next(iter(adapters), None)
    app = build_app(engine, args.served_name or args.model, default_adapter, args.default_max_tokens, watchdog)
    if token:
        app.add_middleware(TokenAuth, token=token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5,
                                           timeout_keep_alive=75))
    watchdog.run_in_background(lambda: setattr(server, "should_exit", True))
    server.run(sockets=[sock])
    engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
