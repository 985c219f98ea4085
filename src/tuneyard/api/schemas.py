"""Shared response helpers: timestamps and the list envelope of the seed."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso(dt: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, as the seed writes timestamps."""
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{dt.microsecond // 1000:03d}Z" if dt.microsecond else "Z")


def list_envelope(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
