"""Domain errors. Services raise these; the API maps them to HTTP in one place (api/errors.py)."""

from __future__ import annotations


class TuneyardError(Exception):
    status_code = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class InvalidRequest(TuneyardError):
    status_code = 400


class AuthenticationFailed(TuneyardError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"


class InsufficientCredit(TuneyardError):
    status_code = 402
    type = "billing_error"
    code = "insufficient_credit"


class NotFound(TuneyardError):
    status_code = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(TuneyardError):
    status_code = 409
    type = "conflict_error"
    code = "conflict"


class PayloadTooLarge(TuneyardError):
    status_code = 413
    code = "file_too_large"


class RateLimited(TuneyardError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limited"


class Unavailable(TuneyardError):
    status_code = 503
    type = "service_unavailable"
    code = "unavailable"
