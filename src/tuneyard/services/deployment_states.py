"""The deployment state machine. Every status change goes through ``transition``; ``stopped`` and
``failed`` are final, and every transition writes an event.

    queued -> provisioning -> serving <-> unhealthy
    serving | unhealthy -> provisioning          (the worker is restarted)
    provisioning -> queued                       (its supervisor died before the worker started)
    (any non-terminal) -> stopped | failed

Usage lives on the row (``serving_seconds``, ``total_requests``, ``prompt_tokens``,
``completion_tokens``): ``accrue`` adds serving time up to now, and runs before every status
change. Code that must act on status changes (billing: settle the time a deployment held its
hardware) registers with ``on_transition`` and is called inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest
from tuneyard.ids import new_id
from tuneyard.store.models import Deployment, DeploymentEvent, utcnow

TERMINAL = frozenset({"stopped", "failed"})
ACTIVE = ("queued", "provisioning", "serving", "unhealthy")
RUNNING = ("provisioning", "serving", "unhealthy")  # a worker process exists (or is starting)
STATUSES = (*ACTIVE, *TERMINAL)
ALLOWED = {
    "queued": {"provisioning", "stopped", "failed"},
    "provisioning": {"serving", "queued", "stopped", "failed"},
    "serving": {"unhealthy", "provisioning", "stopped", "failed"},
    "unhealthy": {"serving", "provisioning", "stopped", "failed"},
}

Listener = Callable[[Session, Deployment, str, str, datetime], None]
_listeners: list[Listener] = []


def on_transition(listener: Listener) -> Listener:
    """Register ``listener(session, deployment, previous, status, now)`` for every status change."""
    _listeners.append(listener)
    return listener


def add_event(session: Session, deployment_id: str, type_: str, message: str, *, level: str = "info",
              data: dict[str, Any] | None = None) -> DeploymentEvent:
    event = DeploymentEvent(id=new_id("event"), deployment_id=deployment_id, type=type_, level=level,
                            message=message, data=data)
    session.add(event)
    session.flush()
    return event


def accrue(dep: Deployment, now: datetime | None = None) -> None:
    """Add the serving time since the last accrual (only ``serving`` counts as serving)."""
    now = now or utcnow()
    if dep.status == "serving" and dep.accounted_at is not None and now > dep.accounted_at:
        dep.serving_seconds = (dep.serving_seconds or 0.0) + (now - dep.accounted_at).total_seconds()
    dep.accounted_at = now


def transition(session: Session, dep: Deployment, status: str, message: str | None = None, *,
               error: tuple[str, str] | None = None, data: dict[str, Any] | None = None) -> None:
    if dep.status in TERMINAL:
        raise InvalidRequest(f"Deployment {dep.id} is already {dep.status}", code="deployment_terminal")
    if status not in ALLOWED[dep.status]:
        raise InvalidRequest(f"Deployment {dep.id} cannot go from {dep.status} to {status}",
                             code="invalid_transition")
    now = utcnow()
    accrue(dep, now)
    previous, dep.status, dep.updated_at = dep.status, status, now
    if status == "provisioning" and dep.provisioning_at is None:
        dep.provisioning_at = now
    elif status == "serving" and dep.started_at is None:
        dep.started_at = now
    elif status in TERMINAL:
        dep.stopped_at = now
        dep.lease_expires_at = None
    if error:
        dep.error_code, dep.error_message = error
    text = message or f"Deployment {status}"
    add_event(session, dep.id, f"deployment.{status}", text, level="error" if status == "failed" else "info",
              data={"from": previous, "to": status, **({"error": {"code": error[0], "message": error[1]}}
                                                         if error else {}), **(data or {})})
    for listener in _listeners:
        listener(session, dep, previous, status, now)


def units(gpu_type: str, gpu_count: int) -> int:
    """Capacity units a deployment holds: its GPUs, or one CPU slot (every capacity count uses this)."""
    return 1 if gpu_type == "cpu" else gpu_count
