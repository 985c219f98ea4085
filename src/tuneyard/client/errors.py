"""Client-side exceptions: one mapping from the API's error envelope (and transport failures) to classes.

Every error the client raises is a :class:`TuneyardError`. HTTP errors carry what the server sent
(``{"error": {"type", "code", "message", "param"}}``) plus the status code and the request id.
"""

from __future__ import annotations

import httpx


class TuneyardError(Exception):
    """Base class of everything :mod:`tuneyard.client` raises."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConnectionFailed(TuneyardError):
    """The server could not be reached (refused, DNS, TLS, or the connection dropped)."""


class WaitTimeout(TuneyardError):
    """A ``wait`` gave up before the resource settled."""


class APIError(TuneyardError):
    """The server answered with an error status."""

    status_code: int = 0

    def __init__(self, message: str, *, status_code: int | None = None, type: str | None = None,
                 code: str | None = None, param: str | None = None, request_id: str | None = None,
                 retry_after: float | None = None, body: object = None):
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        return self.message


class BadRequest(APIError):
    status_code = 400


class Unauthorized(APIError):
    status_code = 401


class InsufficientCredit(APIError):
    status_code = 402


class PermissionDenied(APIError):
    status_code = 403


class NotFound(APIError):
    status_code = 404


class Conflict(APIError):
    status_code = 409


class PayloadTooLarge(BadRequest):
    status_code = 413


class ValidationError(BadRequest):
    """422: the request body failed schema validation."""

    status_code = 422


class RateLimited(APIError):
    status_code = 429


class ServerError(APIError):
    status_code = 500


class ServiceUnavailable(ServerError):
    status_code = 503


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest, 401: Unauthorized, 402: InsufficientCredit, 403: PermissionDenied, 404: NotFound,
    409: Conflict, 413: PayloadTooLarge, 422: ValidationError, 429: RateLimited, 503: ServiceUnavailable,
}


def error_class(status: int) -> type[APIError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return BadRequest if status >= 400 else APIError


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for APIs; fall back to our own backoff


def from_response(response: httpx.Response) -> APIError:
    """The exception for an error response (already read), with the envelope's message when there is one."""
    status = response.status_code
    body: object = None
    fields: dict = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    message = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            fields = err
            message = err.get("message")
        elif isinstance(err, str):
            message = err
        message = message or body.get("message") or (body.get("detail") if isinstance(body.get("detail"), str)
                                                      else None)
    if not message:
        message = response.text.strip()[:500] or f"HTTP {status}"
    return error_class(status)(
        message, status_code=status, type=fields.get("type"), code=fields.get("code"), param=fields.get("param"),
        request_id=response.headers.get("x-request-id"), retry_after=retry_after_seconds(response), body=body)
