"""Cursor pagination over ``seq`` (insertion order), newest first.

``after`` is the id of the last item of the previous page. Because the cursor is a position in
insertion order rather than an offset, rows inserted while a client pages never shift or repeat
items on the pages that follow.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest

MAX_LIMIT = 100


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}", param="limit")
    return limit


def page(session: Session, stmt: Select, model, *, limit: int, after: str | None,
         ascending: bool = False) -> tuple[list, bool]:
    """Run ``stmt`` (already filtered to the caller's organization) one page at a time."""
    check_limit(limit)
    if after:
        cursor = session.execute(stmt.with_only_columns(model.seq).where(model.id == after)).scalar()
        if cursor is None:
            raise InvalidRequest(f"Unknown cursor {after!r} for this list", param="after")
        stmt = stmt.where(model.seq > cursor if ascending else model.seq < cursor)
    stmt = stmt.order_by(model.seq.asc() if ascending else model.seq.desc()).limit(limit + 1)
    rows = list(session.execute(stmt).scalars())
    return rows[:limit], len(rows) > limit


def owned(model, org_id: str) -> Select:
    return select(model).where(model.org_id == org_id)
