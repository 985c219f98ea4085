"""The credit ledger: every credit and charge is a transaction; the balance is their sum.

Writers that decide on the balance (creating work, charging for it) first take the organization's
row lock (``lock_org``): ``SELECT ... FOR UPDATE`` on Postgres; SQLite's ``BEGIN IMMEDIATE``
already serializes every writer. Read-decide-write on the balance is therefore never interleaved.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneyard.errors import InsufficientCredit, InvalidRequest
from tuneyard.ids import new_id
from tuneyard.store.models import CreditHold, CreditTransaction, Organization, UsageRecord


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


def lock_org(session: Session, org_id: str) -> None:
    """Serialize balance decisions of one organization until this transaction ends."""
    session.execute(select(Organization.id).where(Organization.id == org_id).with_for_update()).scalar()


def charge(session: Session, org_id: str, amount_usd: Decimal, description: str, *, reference: str,
           idempotency_key: str) -> CreditTransaction:
    """A negative transaction; ``idempotency_key`` is unique, so the same charge cannot land twice."""
    txn = CreditTransaction(id=new_id("transaction"), org_id=org_id, amount_usd=-amount_usd, kind="charge",
                            description=description, reference=reference, idempotency_key=idempotency_key)
    session.add(txn)
    session.flush()
    return txn


def held(session: Session, org_id: str) -> Decimal:
    """Credit promised to unfinished work: each open hold less what its resource was charged so far."""
    holds = session.execute(select(CreditHold).where(CreditHold.org_id == org_id,
                                                     CreditHold.released_at.is_(None))).scalars().all()
    if not holds:
        return Decimal(0)
    spent = dict(session.execute(
        select(UsageRecord.resource_id, func.sum(UsageRecord.amount_usd))
        .where(UsageRecord.org_id == org_id, UsageRecord.resource_id.in_([h.resource_id for h in holds]))
        .group_by(UsageRecord.resource_id)).all())
    return sum((max(Decimal(h.amount_usd) - Decimal(spent.get(h.resource_id) or 0), Decimal(0)) for h in holds),
               Decimal(0))


def available(session: Session, org_id: str) -> Decimal:
    return balance(session, org_id) - held(session, org_id)


def ensure_available(session: Session, org_id: str, amount_usd: Decimal, what: str) -> Decimal:
    """402 unless ``amount_usd`` fits in the available credit; returns what is available."""
    free = available(session, org_id)
    if amount_usd > free:
        raise InsufficientCredit(
            f"Insufficient credit: {what} is estimated at {usd(amount_usd)} but only {usd(max(free, Decimal(0)))} "
            f"is available (balance {usd(balance(session, org_id))}, {usd(held(session, org_id))} held for "
            "unfinished work). Add credit with `tuneyard credits grant ORG AMOUNT`.", param="estimated_cost_usd")
    return free


def usd(amount: Decimal) -> str:
    """``$1,234.5``, ``$0.001234``: every digit the ledger keeps, none it does not."""
    text = f"{Decimal(amount):,.6f}".rstrip("0").rstrip(".")
    return f"${text}"


def hold(session: Session, org_id: str, kind: str, ref: str, amount_usd: Decimal) -> CreditHold:
    row = CreditHold(id=new_id("hold"), org_id=org_id, resource_kind=kind, resource_id=ref, amount_usd=amount_usd)
    session.add(row)
    session.flush()
    return row


def release(session: Session, kind: str, ref: str, when) -> bool:
    """Release the resource's open hold; False when there was none (already released)."""
    row = session.execute(select(CreditHold).where(CreditHold.resource_kind == kind, CreditHold.resource_id == ref,
                                                   CreditHold.released_at.is_(None))).scalar()
    if row is None:
        return False
    row.released_at = when
    return True
