"""``/v1/billing``: balance, transactions, the credit check, and the burn rate over the ledger."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.services import billing, cluster, costs, metering, orgs
from tuneyard.services.pagination import page
from tuneyard.store.models import CreditTransaction

router = APIRouter(prefix="/v1/billing", tags=["billing"])


def txn_json(t: CreditTransaction) -> dict:
    return {"id": t.id, "object": "transaction", "amount_usd": float(t.amount_usd), "type": t.kind,
            "description": t.description, "reference": t.reference, "created_at": iso(t.created_at)}


@router.get("/balance")
def get_balance(principal: PrincipalDep, session: SessionDep) -> dict:
    org = orgs.get_org(session, principal.org_id)
    held = billing.held(session, org.id)
    balance = billing.balance(session, org.id)
    return {"object": "balance", "org_id": org.id, "organization_name": org.name, "plan": org.plan,
            "balance_usd": round(float(balance), 6), "held_usd": costs.money(held),
            "available_usd": costs.money(balance - held), "currency": "usd"}


@router.get("/transactions")
def list_transactions(principal: PrincipalDep, session: SessionDep, limit: int = Query(20),
                      after: str | None = None) -> dict:
    rows, has_more = page(session, billing.transactions_query(principal.org_id), CreditTransaction,
                          limit=limit, after=after)
    return list_envelope([txn_json(t) for t in rows], has_more)


class CheckBalance(BaseModel):
    """Either an amount, or a GPU lease to estimate (the fields of ``/v1/cost/estimate``)."""

    model_config = ConfigDict(extra="ignore")

    estimated_cost_usd: float | None = Field(default=None, ge=0)
    gpu_type: str | None = None
    gpu_count: int = Field(default=1, ge=1, le=1024)
    duration_minutes: float = Field(default=60, ge=0, le=525_600)
    provider: str | None = None
    markup: float | None = None


@router.post("/check_balance")
def check_balance(body: CheckBalance, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    """200 with ``sufficient: true`` when the available credit covers the amount; 402 otherwise."""
    if body.estimated_cost_usd is not None:
        amount = costs.q(Decimal(str(body.estimated_cost_usd)))
    else:
        gpu_type = body.gpu_type or next(iter(cluster.local_inventory()))
        amount = Decimal(str(costs.estimate(ctx.settings, gpu_type, body.gpu_count, body.duration_minutes,
                                            body.provider, body.markup)["cost_usd"]))
    available = billing.ensure_available(session, principal.org_id, amount, "this work")
    balance = billing.balance(session, principal.org_id)
    return {"object": "balance_check", "sufficient": True, "balance_usd": costs.money(balance),
            "available_usd": costs.money(available), "held_usd": costs.money(balance - available),
            "estimated_cost_usd": costs.money(amount), "remaining_after_usd": costs.money(available - amount),
            "currency": "usd"}


@router.get("/burn_rate")
def get_burn_rate(principal: PrincipalDep, session: SessionDep) -> dict:
    payload = metering.burn_rate(session, principal.org_id)
    for item in payload["items"]:
        item["since"] = iso(item["since"])
    return payload
