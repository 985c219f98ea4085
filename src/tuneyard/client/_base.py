"""What every resource group shares: the transport and list paging."""

from __future__ import annotations

from typing import Any, TypeVar

from tuneyard.client.transport import Transport
from tuneyard.client.types import APIObject, Page

T = TypeVar("T", bound=APIObject)


class ResourceGroup:
    def __init__(self, transport: Transport):
        self._t = transport

    def _list(self, path: str, model: type[T], *, limit: int | None = 20, after: str | None = None,
              **filters: Any) -> Page[T]:
        params = {"limit": limit, "after": after, **filters}
        body = self._t.json("GET", path, params=params)
        data = body.get("data", []) if isinstance(body, dict) else list(body or [])

        def fetch_next(cursor: str) -> Page[T]:
            return self._list(path, model, limit=limit, after=cursor, **filters)

        return Page[model](data=[model.model_validate(item) for item in data],  # type: ignore[valid-type]
                           has_more=bool(body.get("has_more")) if isinstance(body, dict) else False,
                           fetch_next=fetch_next)
