"""HTTP for the client: auth, error mapping, retries with backoff, and Server-Sent Events.

Retries: a request that never reached the server (connection refused) is retried whatever its
method; a 429/5xx answer or a dropped connection is retried only for idempotent requests (GET,
HEAD, PUT, DELETE, and calls marked ``idempotent=True`` such as chat). Backoff doubles from
``backoff`` seconds up to 8 s with jitter, or follows ``Retry-After`` (up to 30 s).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, SSEError
from httpx_sse import connect_sse as _connect_sse

from tuneyard import __version__
from tuneyard.client import errors

log = logging.getLogger("tuneyard.client")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 30.0


class Transport:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 60.0, max_retries: int = 3,
                 backoff: float = 0.5, event_hooks: dict | None = None):
        headers = {"User-Agent": f"tuneyard-client/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url
        self.max_retries = max_retries
        self.backoff = backoff
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0),
                                 event_hooks=event_hooks or {})

    def close(self) -> None:
        self.http.close()

    # -- plain requests -------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                files: dict | None = None, data: dict | None = None, idempotent: bool | None = None,
                timeout: float | None = None) -> httpx.Response:
        method = method.upper()
        retry_answers = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS
        params = {k: v for k, v in (params or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"params": params, "json": json, "files": files, "data": data}
        if timeout is not None:
            kwargs["timeout"] = timeout
        attempt = 0
        while True:
            _rewind(files)
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                if attempt < self.max_retries:  # nothing reached the server: always safe to retry
                    attempt = self._sleep(attempt, None, f"{method} {path}: {exc}")
                    continue
                raise errors.ConnectionFailed(f"cannot reach tuneyard at {self.base_url}: {_reason(exc)}") from None
            except httpx.TimeoutException as exc:
                if retry_answers and attempt < self.max_retries:
                    attempt = self._sleep(attempt, None, f"{method} {path}: timed out")
                    continue
                raise errors.ConnectionFailed(f"{method} {path} timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                if retry_answers and attempt < self.max_retries:
                    attempt = self._sleep(attempt, None, f"{method} {path}: {exc}")
                    continue
                raise errors.ConnectionFailed(f"{method} {path} failed: {_reason(exc)}") from None
            if response.status_code in RETRY_STATUSES and retry_answers and attempt < self.max_retries:
                attempt = self._sleep(attempt, errors.retry_after_seconds(response),
                                      f"{method} {path}: HTTP {response.status_code}")
                continue
            if response.status_code >= 400:
                raise errors.from_response(response)
            return response

    def json(self, method: str, path: str, **kwargs) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        return response.json()

    def _sleep(self, attempt: int, retry_after: float | None, why: str) -> int:
        if retry_after is not None:
            delay = min(retry_after, MAX_RETRY_AFTER)
        else:
            delay = min(self.backoff * (2 ** attempt), MAX_BACKOFF) * random.uniform(0.8, 1.2)
        log.info("retrying in %.1fs (attempt %d of %d): %s", delay, attempt + 1, self.max_retries, why)
        time.sleep(delay)
        return attempt + 1

    # -- streams ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
               headers: dict | None = None, read_timeout: float | None = None) -> Iterator[httpx.Response]:
        """A streamed response with a 2xx status; error statuses raise the mapped exception."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = httpx.Timeout(self.http.timeout.connect or 10.0, read=read_timeout, write=60.0, pool=60.0)
        try:
            with self.http.stream(method, path, params=params, json=json, headers=headers,
                                  timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise errors.from_response(response)
                yield response
        except httpx.ConnectError as exc:
            raise errors.ConnectionFailed(f"cannot reach tuneyard at {self.base_url}: {_reason(exc)}") from None
        except httpx.TransportError as exc:
            raise errors.ConnectionFailed(f"{method} {path}: stream interrupted ({_reason(exc)})") from None

    @contextlib.contextmanager
    def sse(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
            headers: dict | None = None, read_timeout: float | None = None) -> Iterator[Iterator[ServerSentEvent]]:
        """Server-Sent Events from a 2xx ``text/event-stream`` response (error statuses raise)."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = httpx.Timeout(self.http.timeout.connect or 10.0, read=read_timeout, write=60.0, pool=60.0)
        try:
            with _connect_sse(self.http, method, path, params=params, json=json, headers=dict(headers or {}),
                              timeout=timeout) as source:
                response = source.response
                if response.status_code >= 400:
                    response.read()
                    raise errors.from_response(response)
                yield _events(source)
        except httpx.ConnectError as exc:
            raise errors.ConnectionFailed(f"cannot reach tuneyard at {self.base_url}: {_reason(exc)}") from None
        except httpx.TransportError as exc:
            raise errors.ConnectionFailed(f"{method} {path}: stream interrupted ({_reason(exc)})") from None


def _events(source) -> Iterator[ServerSentEvent]:
    try:
        yield from source.iter_sse()
    except SSEError as exc:
        raise errors.APIError(f"expected an event stream from the server: {exc}") from None


def _rewind(files: dict | None) -> None:
    for value in (files or {}).values():
        fileobj = value[1] if isinstance(value, tuple) else value
        if hasattr(fileobj, "seek"):
            with contextlib.suppress(OSError, ValueError):
                fileobj.seek(0)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is `tuneyard serve` running?)"
    return text
