"""Metering: running work is charged by the second, period by period, into the ledger.

Anything that burns hardware while it runs (training jobs, deployments) is a *source* registered
here. A source lists its running items as ``Meterable`` (who pays, which GPUs, since when) and
knows how to lock one row and how to stop one that its organization can no longer pay for.
Everything else is generic:

* ``charge_period`` bills ``[end of the last period, until]`` at the price of the item's shape,
  writes a ``UsageRecord`` and a charge transaction. Periods are contiguous and unique by
  ``(kind, id, period_start)`` and the charge's idempotency key is derived from the same triple,
  so a period is charged once even when two workers meter the same item.
* Charges never overdraw: a charge is capped at the balance and the rest recorded as unbilled.
* ``meter_running`` (the scheduler calls it every ``metering_interval_seconds``) charges every
  running item and stops those whose organization cannot pay for the next period.
* ``burn_rate`` and ``running_items`` are what ``/v1/billing/burn_rate`` and the monthly
  projection read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.ids import new_id
from tuneyard.services import billing, costs
from tuneyard.settings import Settings, get_settings
from tuneyard.store.models import UsageRecord, utcnow

log = logging.getLogger("tuneyard.metering")


@dataclass(frozen=True)
class Meterable:
    kind: str  # 'training_job' | 'deployment'
    id: str
    org_id: str
    gpu_type: str
    gpu_count: int
    provider: str
    since: datetime  # when its current run began to cost (provisioning)
    status: str
    label: str  # for transaction descriptions: "SFT job job_…"


class Source(Protocol):
    kind: str

    def running(self, session: Session, org_id: str | None = None) -> list[Meterable]:
        """Items that cost money right now (of one organization, or of all)."""

    def lock(self, session: Session, ref: str) -> Meterable | None:
        """Lock one item's row for this transaction; None when it no longer runs (or another
        transaction holds it: it is metered there)."""

    def record_cost(self, session: Session, ref: str, total_usd: Decimal) -> None:
        """Store the item's total metered cost on its row (``cost_usd``, ``total_cost_usd``)."""

    def stop_for_credit(self, session: Session, ref: str, message: str) -> None:
        """Stop an item whose organization ran out of credit, with an event saying so."""

    def tokens(self, session: Session, ref: str, start: datetime, end: datetime) -> int:
        """Tokens served in ``[start, end)`` (0 for work that serves none)."""


SOURCES: dict[str, Source] = {}


def register(source: Source) -> None:
    SOURCES[source.kind] = source


def settings_of(session: Session) -> Settings:
    """The settings of the process that opened ``session`` (``Context`` puts them in ``info``)."""
    return session.info.get("settings") or get_settings()


def last_period_end(session: Session, kind: str, ref: str) -> datetime | None:
    return session.execute(select(func.max(UsageRecord.period_end)).where(
        UsageRecord.resource_kind == kind, UsageRecord.resource_id == ref)).scalar()


def total_charged(session: Session, kind: str, ref: str) -> Decimal:
    return Decimal(session.execute(select(func.coalesce(func.sum(UsageRecord.amount_usd), 0)).where(
        UsageRecord.resource_kind == kind, UsageRecord.resource_id == ref)).scalar_one())


def hourly_price(session: Session, item: Meterable) -> costs.Price:
    return costs.price(settings_of(session), item.provider, item.gpu_type, item.gpu_count)


def charge_period(session: Session, item: Meterable, until: datetime) -> UsageRecord | None:
    """Bill ``item`` from the end of its last period (or its start) to ``until``; None when there is
    nothing to bill. The caller holds the item's row lock."""
    last = last_period_end(session, item.kind, item.id)
    start = max(last, item.since) if last else item.since
    if until <= start:
        return None
    seconds = (until - start).total_seconds()
    price = hourly_price(session, item)
    cost = costs.q(price.cost(seconds))
    billing.lock_org(session, item.org_id)
    balance = billing.balance(session, item.org_id)
    billed = min(cost, max(balance, Decimal(0)))
    txn = None
    if billed > 0:
        what = f"{item.label}: {seconds:.1f} s of {item.gpu_type} x{item.gpu_count} on {item.provider}"
        txn = billing.charge(session, item.org_id, billed, what, reference=item.id,
                             idempotency_key=f"usage:{item.kind}:{item.id}:{start.isoformat()}")
    source = SOURCES.get(item.kind)
    record = UsageRecord(
        id=new_id("usage"), org_id=item.org_id, resource_kind=item.kind, resource_id=item.id, period_start=start,
        period_end=until, seconds=seconds, gpu_type=item.gpu_type, gpu_count=item.gpu_count, provider=item.provider,
        usd_per_hour=costs.q(price.usd_per_hour), amount_usd=billed, unbilled_usd=cost - billed,
        tokens=source.tokens(session, item.id, start, until) if source else 0,
        transaction_id=txn.id if txn else None)
    session.add(record)
    session.flush()
    if source:
        source.record_cost(session, item.id, total_charged(session, item.kind, item.id))
    return record


def settle(session: Session, item: Meterable, until: datetime) -> Decimal:
    """Final charge when an item stops (or pauses): bill up to ``until``; returns its total cost."""
    charge_period(session, item, until)
    return total_charged(session, item.kind, item.id)


def meter_running(db, settings: Settings) -> int:
    """One metering pass over every running item, each in its own short transaction. Returns how
    many periods were charged. Items metered less than half an interval ago (by another worker)
    are left for the next pass."""
    charged = 0
    min_gap = timedelta(seconds=settings.metering_interval_seconds / 2)
    for kind, source in list(SOURCES.items()):
        with db.session(readonly=True) as s:
            refs = [item.id for item in source.running(s)]
        for ref in refs:
            with db.session() as s:
                item = source.lock(s, ref)
                if item is None:
                    continue
                now = utcnow()
                last = last_period_end(s, kind, ref)
                if last and now - last < min_gap:
                    continue
                if charge_period(s, item, now) is not None:
                    charged += 1
                next_period = hourly_price(s, item).cost(settings.metering_interval_seconds)
                balance = billing.balance(s, item.org_id)
                if balance < next_period:
                    source.stop_for_credit(s, ref, f"Credit exhausted: the balance {billing.usd(balance)} does not "
                                                   f"cover the next {settings.metering_interval_seconds:g} s "
                                                   f"({billing.usd(costs.q(next_period))}); stopping")
    return charged


def running_items(session: Session, org_id: str) -> list[dict]:
    """What the organization is paying for right now, with hourly prices and cost so far."""
    out = []
    for source in SOURCES.values():
        for item in source.running(session, org_id):
            price = hourly_price(session, item)
            out.append({"kind": item.kind, "id": item.id, "status": item.status,
                        "gpu": {"type": item.gpu_type, "count": item.gpu_count}, "provider": item.provider,
                        "usd_per_hour": costs.money(price.usd_per_hour), "since": item.since,
                        "cost_so_far_usd": costs.money(total_charged(session, item.kind, item.id))})
    return out


def burn_rate(session: Session, org_id: str) -> dict:
    items = running_items(session, org_id)
    per_hour = sum((Decimal(str(i["usd_per_hour"])) for i in items), Decimal(0))
    by_kind = {k: sum((Decimal(str(i["usd_per_hour"])) for i in items if i["kind"] == k), Decimal(0))
               for k in ("training_job", "deployment")}
    balance = billing.balance(session, org_id)
    hours = (balance / per_hour) if per_hour > 0 else None
    return {
        "object": "burn_rate", "org_id": org_id, "usd_per_hour": costs.money(per_hour),
        "burn_rate_usd_per_hour": costs.money(per_hour), "usd_per_day": costs.money(per_hour * 24),
        "training_usd_per_hour": costs.money(by_kind["training_job"]),
        "serving_usd_per_hour": costs.money(by_kind["deployment"]),
        "balance_usd": costs.money(balance), "available_usd": costs.money(billing.available(session, org_id)),
        "hours_remaining": float(round(hours, 2)) if hours is not None else None,
        "runway_hours": float(round(hours, 2)) if hours is not None else None,
        "active_jobs": sum(1 for i in items if i["kind"] == "training_job"),
        "active_deployments": sum(1 for i in items if i["kind"] == "deployment"),
        "items": items, "currency": "usd",
    }
