"""Helpers shared by the ``/api`` routes: JSON bodies read leniently, OpenAI list envelopes."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from tuneyard.errors import InvalidRequest
from tuneyard.services.openai_ids import to_native
from tuneyard.services.pagination import page

_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; a 400 (not FastAPI's 422) when it is not one, as OpenAI answers."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object", code="invalid_json")
    return body


def parse(model: type[BaseModel], body: dict[str, Any]):
    """Validate ``body`` against ``model``; the first problem becomes a 400 naming the field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        # Union members add their type to the location ("gpu.str"): keep the field names only.
        param = ".".join(str(p) for p in err.get("loc", ()) if str(p) not in _TYPE_TAGS and "[" not in str(p)) or None
        if err.get("type") == "missing":
            raise InvalidRequest(f"Missing required parameter: '{param}'", param=param,
                                 code="missing_required_parameter") from None
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise InvalidRequest(f"Invalid value for '{param}': {msg}" if param else msg, param=param,
                             code="invalid_value") from None


def openai_list(data: list[dict], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def openai_page(session, stmt, model, *, kind: str, limit: int, after: str | None, ascending: bool = False):
    """``pagination.page`` with the cursor in its OpenAI spelling (``file-…``, ``ftjob-…``)."""
    try:
        return page(session, stmt, model, limit=limit, after=to_native(kind, after), ascending=ascending)
    except InvalidRequest as exc:
        if exc.param == "after":
            raise InvalidRequest(f"Unknown cursor {after!r} for this list", param="after") from None
        raise
