"""Spend reports over metered usage: ``/v1/cost/summary``, ``by_provider`` and ``by_gpu``.

All three read the same ``UsageRecord`` rows, and every record's ``amount_usd`` is exactly the
charge transaction written with it, so the reports, the transactions and the balance agree to
the cent by construction. A period belongs to the window it ended in. Tokens served are read from
the request log (by request time), which the gateway writes in batches after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest
from tuneyard.services import billing, costs
from tuneyard.store.models import Deployment, DeploymentRequest, UsageRecord, utcnow

MAX_DAYS = 3660
KINDS = ("training_job", "deployment")


@dataclass
class Spend:
    cost: Decimal = Decimal(0)
    unbilled: Decimal = Decimal(0)
    gpu_seconds: float = 0.0
    resources: int = 0  # distinct jobs or deployments

    def add(self, other: Spend) -> Spend:
        return Spend(self.cost + other.cost, self.unbilled + other.unbilled, self.gpu_seconds + other.gpu_seconds,
                     self.resources + other.resources)


def _window(days: int) -> tuple[datetime, datetime]:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_DAYS}", param="days")
    end = utcnow()
    return end - timedelta(days=days), end


def _spend(session: Session, org_id: str, start: datetime, end: datetime,
           key: str | None = None) -> dict[tuple[str | None, str], Spend]:
    """``(group, resource kind) -> Spend``; the group is the value of ``UsageRecord.<key>`` (or None)."""
    group = getattr(UsageRecord, key) if key else None
    cols = [c for c in (group, UsageRecord.resource_kind) if c is not None]
    rows = session.execute(
        select(*cols, func.sum(UsageRecord.amount_usd), func.sum(UsageRecord.unbilled_usd),
               func.sum(UsageRecord.seconds * UsageRecord.gpu_count),
               func.count(func.distinct(UsageRecord.resource_id)))
        .where(UsageRecord.org_id == org_id, UsageRecord.period_end > start, UsageRecord.period_end <= end)
        .group_by(*cols)).all()
    out = {}
    for row in rows:
        name, kind, amount, unbilled, gpu_seconds, n = row if key else (None, *row)
        out[(name, kind)] = Spend(Decimal(amount or 0), Decimal(unbilled or 0), float(gpu_seconds or 0), int(n))
    return out


def _tokens(session: Session, org_id: str, start: datetime, end: datetime, key: str | None = None) -> dict:
    """Tokens served in the window, per ``Deployment.<key>`` (or under None)."""
    group = getattr(Deployment, key) if key else None
    cols = [group] if key else []
    stmt = (select(*cols, func.sum(DeploymentRequest.prompt_tokens + DeploymentRequest.completion_tokens))
            .join(Deployment, Deployment.id == DeploymentRequest.deployment_id)
            .where(DeploymentRequest.org_id == org_id, DeploymentRequest.created_at > start,
                   DeploymentRequest.created_at <= end))
    if key:
        return {name: int(n or 0) for name, n in session.execute(stmt.group_by(group)).all()}
    return {None: int(session.execute(stmt).scalar() or 0)}


def _figures(by_kind: dict[str, Spend], tokens: int) -> dict:
    total = Spend()
    for s in by_kind.values():
        total = total.add(s)
    training, serving = by_kind.get("training_job", Spend()), by_kind.get("deployment", Spend())
    return {"cost_usd": costs.money(total.cost), "training_cost_usd": costs.money(training.cost),
            "serving_cost_usd": costs.money(serving.cost), "unbilled_usd": costs.money(total.unbilled),
            "gpu_hours": round(total.gpu_seconds / 3600, 6), "gpu_seconds": round(total.gpu_seconds, 3),
            "tokens_served": tokens, "job_count": training.resources, "deployment_count": serving.resources}


def summary(session: Session, org_id: str, days: int = 30) -> dict:
    start, end = _window(days)
    spend = _spend(session, org_id, start, end)
    figures = _figures({kind: s for (_, kind), s in spend.items()}, _tokens(session, org_id, start, end)[None])
    return {"object": "cost_summary", "org_id": org_id, "days": days, "period_start": start, "period_end": end,
            "total_cost_usd": figures.pop("cost_usd"), **figures,
            "balance_usd": costs.money(billing.balance(session, org_id)), "currency": "usd"}


def breakdown(session: Session, org_id: str, days: int, key: str) -> dict:
    """Spend per ``provider`` or per ``gpu_type``, largest first."""
    start, end = _window(days)
    spend = _spend(session, org_id, start, end, key)
    tokens = _tokens(session, org_id, start, end, key)
    names = sorted({name for name, _ in spend})
    data = [{key: name, **_figures({k: spend[(name, k)] for k in KINDS if (name, k) in spend}, tokens.get(name, 0))}
            for name in names]
    data.sort(key=lambda d: (-d["cost_usd"], d[key]))
    total = sum((s.cost for s in spend.values()), Decimal(0))
    return {"object": "list", "data": data, "has_more": False, "days": days, "period_start": start,
            "period_end": end, "total_cost_usd": costs.money(total), "currency": "usd"}
