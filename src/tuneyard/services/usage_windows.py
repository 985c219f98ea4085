"""Spend over time windows for the Synth balance endpoints, read from the same ledger tables.

Token spend is what serving cost (``UsageRecord`` rows of deployments, whose tokens they carry);
GPU spend is what training cost. Amounts are in cents, as ``synth-ai balance`` prints them /100.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest
from tuneyard.services import billing
from tuneyard.store.models import CreditTransaction, UsageRecord, utcnow

MAX_WINDOW_HOURS = 24 * 3660


def cents(usd: Decimal) -> float:
    return round(float(usd) * 100, 4)


def balance(session: Session, org_id: str) -> dict:
    total = billing.balance(session, org_id)
    held = billing.held(session, org_id)
    last = session.execute(select(func.max(CreditTransaction.created_at))
                           .where(CreditTransaction.org_id == org_id)).scalar()
    if isinstance(last, str):  # SQLite aggregates come back as text
        last = datetime.fromisoformat(last)
    return {"organization_id": org_id, "balance_cents": int((total * 100).to_integral_value()),
            "balance_dollars": round(float(total), 6), "held_cents": cents(held),
            "available_cents": cents(total - held), "currency": "usd",
            "last_updated": (last or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")}


def spend(session: Session, org_id: str, start: datetime, end: datetime) -> dict:
    rows = session.execute(
        select(UsageRecord.resource_kind, func.sum(UsageRecord.amount_usd), func.sum(UsageRecord.tokens),
               func.sum(UsageRecord.seconds * UsageRecord.gpu_count))
        .where(UsageRecord.org_id == org_id, UsageRecord.period_end > start, UsageRecord.period_end <= end)
        .group_by(UsageRecord.resource_kind)).all()
    by_kind = {r[0]: r for r in rows}
    token_usd = Decimal(by_kind["deployment"][1] or 0) if "deployment" in by_kind else Decimal(0)
    gpu_usd = sum((Decimal(r[1] or 0) for k, r in by_kind.items() if k != "deployment"), Decimal(0))
    return {"token_spend_cents": cents(token_usd), "gpu_spend_cents": cents(gpu_usd),
            "total_spend_cents": cents(token_usd + gpu_usd),
            "token_count": int(sum(int(r[2] or 0) for r in rows)),
            "gpu_hours": round(sum(float(r[3] or 0) for r in rows) / 3600, 6)}


def usage(session: Session, org_id: str) -> dict:
    now = utcnow()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {"organization_id": org_id, "current_month": spend(session, org_id, month_start, now),
            "last_30_days": spend(session, org_id, now - timedelta(days=30), now)}


def parse_hours(raw: str | None) -> list[int]:
    text = (raw or "24,168").strip()
    try:
        hours = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise InvalidRequest("hours must be a comma-separated list of whole numbers, e.g. 24,168",
                             param="hours") from None
    if not hours or any(not 1 <= h <= MAX_WINDOW_HOURS for h in hours) or len(hours) > 20:
        raise InvalidRequest(f"hours takes 1 to 20 windows, each between 1 and {MAX_WINDOW_HOURS}", param="hours")
    return hours


def windows(session: Session, org_id: str, hours: list[int]) -> dict:
    now = utcnow()
    return {"organization_id": org_id,
            "windows": [{"window_hours": h, **spend(session, org_id, now - timedelta(hours=h), now)} for h in hours]}
