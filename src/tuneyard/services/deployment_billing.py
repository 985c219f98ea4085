"""Billing of deployments: an hour of serving held at creation, metering while the deployment holds
its hardware in ``provisioning`` or ``serving``, tokens served counted per period, and a stop
(with an event) when its organization runs out of credit.

The deployment state machine calls ``on_transition`` (registered below) for every status change,
so leaving a billed status settles the time up to that moment in the same transaction. Entering
a billed status again (``unhealthy -> serving``, a requeued deployment provisioning again) writes
a zero-cost usage period over the time in between, so billing resumes from that moment.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.ids import new_id
from tuneyard.services import billing, costs, deployment_states, metering
from tuneyard.settings import Settings
from tuneyard.store.models import Deployment, UsageRecord

KIND = "deployment"
BILLED = ("provisioning", "serving")


def reserve(session: Session, settings: Settings, dep: Deployment) -> Decimal:
    """Hold ``deployment_hold_hours`` of serving; 402 when the available credit does not cover it.
    The caller holds the organization's lock (``billing.lock_org``) since before it counted."""
    price = costs.price(settings, dep.provider, dep.gpu_type, dep.gpu_count)
    amount = costs.q(price.cost(settings.deployment_hold_hours * 3600))
    billing.ensure_available(session, dep.org_id, amount,
                             f"deployment {dep.id} ({settings.deployment_hold_hours:g} h of serving)")
    billing.hold(session, dep.org_id, KIND, dep.id, amount)
    dep.cost_per_hour_usd = float(costs.q(price.usd_per_hour))
    return amount


def _meterable(dep: Deployment) -> metering.Meterable:
    return metering.Meterable(kind=KIND, id=dep.id, org_id=dep.org_id, gpu_type=dep.gpu_type,
                              gpu_count=dep.gpu_count, provider=dep.provider, since=dep.provisioning_at,
                              status=dep.status, label=f"Deployment {dep.name} ({dep.id})")


def _free_period(session: Session, dep: Deployment, start: datetime, now: datetime) -> None:
    """A zero-cost period over time that is not billed, so the next billed period starts ``now``."""
    session.add(UsageRecord(id=new_id("usage"), org_id=dep.org_id, resource_kind=KIND, resource_id=dep.id,
                            period_start=start, period_end=now, seconds=0.0, gpu_type=dep.gpu_type,
                            gpu_count=dep.gpu_count, provider=dep.provider, usd_per_hour=Decimal(0),
                            amount_usd=Decimal(0), unbilled_usd=Decimal(0), tokens=0))
    session.flush()


def on_transition(session: Session, dep: Deployment, previous: str, status: str, now: datetime) -> None:
    was, now_billed = previous in BILLED, status in BILLED
    if was and not now_billed and dep.provisioning_at is not None:
        metering.settle(session, _meterable(dep), now)
    elif now_billed and not was and (last := metering.last_period_end(session, KIND, dep.id)) is not None \
            and last < now:
        _free_period(session, dep, last, now)
    if status in deployment_states.TERMINAL and billing.release(session, KIND, dep.id, now):
        total = metering.total_charged(session, KIND, dep.id)
        deployment_states.add_event(session, dep.id, "billing.settled",
                                    f"Deployment cost {billing.usd(total)} "
                                    f"({dep.gpu_type} x{dep.gpu_count} on {dep.provider})",
                                    data={"total_cost_usd": float(total), "cost_per_hour_usd": dep.cost_per_hour_usd})


class DeploymentSource:
    kind = KIND

    def running(self, session: Session, org_id: str | None = None) -> list[metering.Meterable]:
        stmt = select(Deployment).where(Deployment.status.in_(BILLED), Deployment.provisioning_at.is_not(None))
        if org_id:
            stmt = stmt.where(Deployment.org_id == org_id)
        return [_meterable(d) for d in session.execute(stmt.order_by(Deployment.seq)).scalars()]

    def lock(self, session: Session, ref: str) -> metering.Meterable | None:
        dep = session.execute(select(Deployment).where(Deployment.id == ref, Deployment.status.in_(BILLED))
                              .with_for_update(skip_locked=True)).scalar()
        return _meterable(dep) if dep is not None and dep.provisioning_at is not None else None

    def record_cost(self, session: Session, ref: str, total_usd: Decimal) -> None:
        dep = session.execute(select(Deployment).where(Deployment.id == ref)).scalar_one()
        dep.total_cost_usd = float(total_usd)

    def stop_for_credit(self, session: Session, ref: str, message: str) -> None:
        dep = session.execute(select(Deployment).where(Deployment.id == ref)).scalar_one()
        if dep.status in deployment_states.TERMINAL:
            return
        deployment_states.add_event(session, dep.id, "billing.credit_exhausted", message, level="warning",
                                    data={"balance_usd": float(billing.balance(session, dep.org_id))})
        deployment_states.transition(session, dep, "stopped", "Deployment stopped: its organization is out of credit",
                                     error=("insufficient_credit", message))

    def tokens(self, session: Session, ref: str, start: datetime, end: datetime) -> int:
        """Tokens served since the last period: the row's running totals (the request log adds to them
        when it writes its batches) less what earlier periods already counted."""
        dep = session.execute(select(Deployment).where(Deployment.id == ref)).scalar_one()
        counted = session.execute(select(func.coalesce(func.sum(UsageRecord.tokens), 0)).where(
            UsageRecord.resource_kind == KIND, UsageRecord.resource_id == ref)).scalar_one()
        return max(0, int(dep.prompt_tokens or 0) + int(dep.completion_tokens or 0) - int(counted))


metering.register(DeploymentSource())
deployment_states.on_transition(on_transition)
