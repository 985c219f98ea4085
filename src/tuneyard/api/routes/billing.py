"""``/v1/billing``: balance and transactions over the ledger."""

from __future__ import annotations

from fastapi import APIRouter, Query

from tuneyard.api.deps import PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.services import billing, orgs
from tuneyard.services.pagination import page
from tuneyard.store.models import CreditTransaction

router = APIRouter(prefix="/v1/billing", tags=["billing"])


def txn_json(t: CreditTransaction) -> dict:
    return {"id": t.id, "object": "transaction", "amount_usd": float(t.amount_usd), "type": t.kind,
            "description": t.description, "reference": t.reference, "created_at": iso(t.created_at)}


@router.get("/balance")
def get_balance(principal: PrincipalDep, session: SessionDep) -> dict:
    org = orgs.get_org(session, principal.org_id)
    return {"object": "balance", "org_id": org.id, "organization_name": org.name, "plan": org.plan,
            "balance_usd": round(float(billing.balance(session, org.id)), 6), "currency": "usd"}


@router.get("/transactions")
def list_transactions(principal: PrincipalDep, session: SessionDep, limit: int = Query(20),
                      after: str | None = None) -> dict:
    rows, has_more = page(session, billing.transactions_query(principal.org_id), CreditTransaction,
                          limit=limit, after=after)
    return list_envelope([txn_json(t) for t in rows], has_more)
