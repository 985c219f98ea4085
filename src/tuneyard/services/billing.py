"""The credit ledger: every credit and charge is a transaction; the balance is their sum."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest
from tuneyard.ids import new_id
from tuneyard.store.models import CreditTransaction


def balance(session: Session, org_id: str) -> Decimal:
    total = session.execute(
        select(func.coalesce(func.sum(CreditTransaction.amount_usd), 0)).where(CreditTransaction.org_id == org_id)
    ).scalar_one()
    return Decimal(total)


def grant(session: Session, org_id: str, amount_usd: Decimal, description: str = "Credit grant",
          reference: str | None = None) -> CreditTransaction:
    if amount_usd <= 0:
        raise InvalidRequest("A grant must be a positive amount", param="amount_usd")
    txn = CreditTransaction(id=new_id("transaction"), org_id=org_id, amount_usd=amount_usd, kind="grant",
                            description=description, reference=reference)
    session.add(txn)
    session.flush()
    return txn


def transactions_query(org_id: str):
    return select(CreditTransaction).where(CreditTransaction.org_id == org_id)
