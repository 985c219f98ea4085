"""The one table that turns errors into HTTP responses.

``/v1`` uses the seed's envelope ``{"error": {type, code, message, param}}``. ``/api`` (OpenAI/Synth
clients) gets the same envelope plus ``detail``, which the Synth client prints.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneyard.errors import TuneyardError

log = logging.getLogger("tuneyard.api")

_HTTP_TYPES = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "invalid_request_error", 429: "rate_limit_error"}


def error_response(request: Request, status: int, message: str, *, type_: str = "invalid_request_error",
                   code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict = {"error": {"type": type_, "code": code, "message": message, "param": param}}
    if request.url.path.startswith("/api"):
        body["detail"] = message
    return JSONResponse(body, status_code=status, headers=headers)


def _param_from_loc(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TuneyardError)
    async def _domain(request: Request, exc: TuneyardError):
        return error_response(request, exc.status_code, exc.message, type_=exc.type, code=exc.code,
                              param=exc.param, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        param = _param_from_loc(tuple(first.get("loc", ())))
        msg = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            message = "Request body is not valid JSON"
            param = None
        else:
            message = f"{param}: {msg}" if param else msg
        # OpenAI answers a bad request with 400; the /api surface follows it, /v1 keeps the seed's 422.
        status = 400 if request.url.path.startswith("/api") else 422
        return error_response(request, status, message, code="validation_error", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route for {request.method} {request.url.path}"
        return error_response(request, exc.status_code, message,
                              type_=_HTTP_TYPES.get(exc.status_code, "invalid_request_error"),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "Internal server error", type_="api_error", code="internal_error")
