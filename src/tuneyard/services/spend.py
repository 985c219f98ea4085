"""Spend reports over metered usage: ``/v1/cost/summary``, ``by_provider`` and ``by_gpu``.

All three read the same ``UsageRecord`` rows, and every record's ``amount_usd`` is exactly the
charge transaction written with it, so the reports, the transactions and the balance agree to
the cent by construction. A period belongs to the window it ended in. Tokens served are read from
the request log (by request time), which the gateway writes in batches after the fact.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest
from tuneyard.services import billing, costs
from tuneyard.store.models import Deployment, DeploymentRequest, UsageRecord, utcnow

MAX_DAYS = 3660


def _window(days: int):
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_DAYS}", param="days")
    end = utcnow()
    return end - timedelta(days=days), end


def _grouped(session: Session, org_id: str, days: int, *keys):
    start, end = _window(days)
    cols = [getattr(UsageRecord, k) for k in keys]
    rows = session.execute(
        select(*cols, func.sum(UsageRecord.amount_usd), func.sum(UsageRecord.unbilled_usd),
               func.sum(UsageRecord.seconds * UsageRecord.gpu_count), func.sum(UsageRecord.tokens),
               func.count(func.distinct(UsageRecord.resource_id)))
        .where(UsageRecord.org_id == org_id, UsageRecord.period_end > start, UsageRecord.period_end <= end)
        .group_by(*cols)).all()
    return start, end, rows


def _tokens(session: Session, org_id: str, start, end, key: str | None = None) -> dict:
    """Tokens served in the window: ``{None: total}``, or per ``Deployment.<key>``."""
    cols = [getattr(Deployment, key)] if key else []
    stmt = (select(*cols, func.sum(DeploymentRequest.prompt_tokens + DeploymentRequest.completion_tokens))
            .join(Deployment, Deployment.id == DeploymentRequest.deployment_id)
            .where(DeploymentRequest.org_id == org_id, DeploymentRequest.created_at > start,
                   DeploymentRequest.created_at <= end))
    if key:
        return {r[0]: int(r[1] or 0) for r in session.execute(stmt.group_by(*cols)).all()}
    return {None: int(session.execute(stmt).scalar() or 0)}


def _totals(rows, n_keys: int) -> dict:
    amount = sum((Decimal(r[n_keys] or 0) for r in rows), Decimal(0))
    gpu_seconds = sum(float(r[n_keys + 2] or 0) for r in rows)
    return {"cost_usd": costs.money(amount), "unbilled_usd": costs.money(sum((Decimal(r[n_keys + 1] or 0)
                                                                              for r in rows), Decimal(0))),
            "gpu_hours": round(gpu_seconds / 3600, 6), "gpu_seconds": round(gpu_seconds, 3)}


def summary(session: Session, org_id: str, days: int = 30) -> dict:
    start, end, rows = _grouped(session, org_id, days, "resource_kind")
    by_kind = {r[0]: r for r in rows}
    training, serving = by_kind.get("training_job"), by_kind.get("deployment")
    totals = _totals(rows, 1)
    return {
        "object": "cost_summary", "org_id": org_id, "days": days, "period_start": start, "period_end": end,
        "total_cost_usd": totals["cost_usd"], "training_cost_usd": costs.money(Decimal(training[1]) if training
                                                                               else Decimal(0)),
        "serving_cost_usd": costs.money(Decimal(serving[1]) if serving else Decimal(0)),
        "unbilled_usd": totals["unbilled_usd"], "gpu_hours": totals["gpu_hours"],
        "gpu_seconds": totals["gpu_seconds"], "tokens_served": _tokens(session, org_id, start, end)[None],
        "job_count": int(training[5]) if training else 0, "deployment_count": int(serving[5]) if serving else 0,
        "balance_usd": costs.money(billing.balance(session, org_id)), "currency": "usd",
    }


def breakdown(session: Session, org_id: str, days: int, key: str) -> dict:
    """Spend per ``provider`` or per ``gpu_type``, largest first."""
    start, end, rows = _grouped(session, org_id, days, key, "resource_kind")
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r[0], []).append(r)
    tokens = _tokens(session, org_id, start, end, key)
    data = []
    for name, group in groups.items():
        t = _totals([r[1:] for r in group], 1)
        kinds = {r[1]: r for r in group}
        data.append({key: name, "cost_usd": t["cost_usd"], "unbilled_usd": t["unbilled_usd"],
                     "training_cost_usd": costs.money(Decimal(kinds["training_job"][2]) if "training_job" in kinds
                                                      else Decimal(0)),
                     "serving_cost_usd": costs.money(Decimal(kinds["deployment"][2]) if "deployment" in kinds
                                                     else Decimal(0)),
                     "gpu_hours": t["gpu_hours"], "gpu_seconds": t["gpu_seconds"], "tokens_served": tokens.get(name, 0),
                     "job_count": int(kinds["training_job"][6]) if "training_job" in kinds else 0,
                     "deployment_count": int(kinds["deployment"][6]) if "deployment" in kinds else 0})
    data.sort(key=lambda d: (-d["cost_usd"], d[key]))
    total = sum((Decimal(str(d["cost_usd"])) for d in data), Decimal(0))
    return {"object": "list", "data": data, "has_more": False, "days": days, "period_start": start,
            "period_end": end, "total_cost_usd": float(total), "currency": "usd"}
