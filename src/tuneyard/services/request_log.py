"""Per-request logs of the deployment gateway, written off the request path.

The gateway hands each finished request to ``RequestLog.submit`` (a queue append, no I/O); a
background thread writes whatever has queued up every ``flush_seconds`` in one transaction: the
rows, plus the per-deployment totals (``total_requests``, ``prompt_tokens``, ``completion_tokens``)
that billing and the deployment object read. ``query`` and ``metrics`` serve the two read routes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuneyard.store.models import Deployment, DeploymentRequest, utcnow

log = logging.getLogger("tuneyard.request_log")
WINDOW = timedelta(hours=24)
MAX_METRIC_ROWS = 50_000  # percentiles over at most this many of the window's newest requests


@dataclass
class RequestRecord:
    id: str
    deployment_id: str
    org_id: str
    status_code: int
    latency_ms: float
    created_at: datetime
    completed_at: datetime
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    streamed: bool = False
    finish_reason: str | None = None
    error_message: str | None = None
    client_disconnected: bool = False


class RequestLog:
    def __init__(self, db, flush_seconds: float = 0.25, max_batch: int = 1000):
        self.db, self.flush_seconds, self.max_batch = db, flush_seconds, max_batch
        self._queue: queue.SimpleQueue[RequestRecord] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, record: RequestRecord) -> None:
        self._queue.put(record)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # the database may be briefly unavailable: keep what is left for next time
                log.exception("writing request logs failed")

    def flush(self) -> int:
        records: list[RequestRecord] = []
        while len(records) < self.max_batch:
            try:
                records.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not records:
            return 0
        try:
            with self.db.session() as s:
                write(s, records)
        except Exception:
            for r in records:  # retried on the next flush
                self._queue.put(r)
            raise
        return len(records)


def write(session: Session, records: list[RequestRecord]) -> None:
    session.add_all(DeploymentRequest(**asdict(r)) for r in records)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in records:
        t = totals[r.deployment_id]
        t[0] += 1
        t[1] += r.prompt_tokens
        t[2] += r.completion_tokens
    for dep_id, (n, prompt, completion) in sorted(totals.items()):
        session.execute(update(Deployment).where(Deployment.id == dep_id).values(
            total_requests=Deployment.total_requests + n, prompt_tokens=Deployment.prompt_tokens + prompt,
            completion_tokens=Deployment.completion_tokens + completion))


def query(deployment_id: str, start: datetime | None = None, end: datetime | None = None,
          errors_only: bool = False):
    stmt = select(DeploymentRequest).where(DeploymentRequest.deployment_id == deployment_id)
    if start:
        stmt = stmt.where(DeploymentRequest.created_at >= start)
    if end:
        stmt = stmt.where(DeploymentRequest.created_at < end)
    if errors_only:
        stmt = stmt.where(DeploymentRequest.status_code >= 400)
    return stmt


def tokens_between(session: Session, deployment_id: str, start: datetime, end: datetime) -> int:
    """Tokens (prompt + completion) served in ``[start, end)``: what token metering reads."""
    rows = session.execute(select(DeploymentRequest.prompt_tokens, DeploymentRequest.completion_tokens).where(
        DeploymentRequest.deployment_id == deployment_id, DeploymentRequest.created_at >= start,
        DeploymentRequest.created_at < end)).all()
    return sum(p + c for p, c in rows)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


def metrics(session: Session, dep: Deployment) -> dict:
    """Lifetime totals, last-24-hour latency/TTFT percentiles, error rate and rates."""
    now = utcnow()
    since = now - WINDOW
    rows = session.execute(
        select(DeploymentRequest.status_code, DeploymentRequest.latency_ms, DeploymentRequest.ttft_ms,
               DeploymentRequest.tpot_ms, DeploymentRequest.prompt_tokens, DeploymentRequest.completion_tokens)
        .where(DeploymentRequest.deployment_id == dep.id, DeploymentRequest.created_at >= since)
        .order_by(DeploymentRequest.seq.desc()).limit(MAX_METRIC_ROWS)).all()
    ok = [r for r in rows if r.status_code < 400]
    errors = len(rows) - len(ok)
    # Rates over the part of the window the deployment existed in.
    span = max(1.0, (now - max(since, dep.started_at or dep.created_at)).total_seconds())
    completion = sum(r.completion_tokens for r in ok)
    return {
        "window_hours": 24,
        "requests": {"lifetime": dep.total_requests, "last_24h": len(rows), "errors_last_24h": errors},
        "error_rate": round(errors / len(rows), 4) if rows else 0.0,
        "tokens": {"lifetime_prompt": dep.prompt_tokens, "lifetime_completion": dep.completion_tokens,
                   "last_24h_prompt": sum(r.prompt_tokens for r in ok), "last_24h_completion": completion},
        "latency_ms": _percentiles([r.latency_ms for r in ok]),
        "ttft_ms": _percentiles([r.ttft_ms for r in ok if r.ttft_ms is not None]),
        "tpot_ms": _percentiles([r.tpot_ms for r in ok if r.tpot_ms is not None]),
        "requests_per_second": round(len(rows) / span, 4),
        "tokens_per_second": round(completion / span, 4),
    }
