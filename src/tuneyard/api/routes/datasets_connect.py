"""``/v1/datasets/connect`` and ``/v1/datasets/connect/validate``: datasets from hf, s3, postgres, https."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from tuneyard.api.deps import CtxDep, PrincipalDep
from tuneyard.api.routes.datasets import dataset_json
from tuneyard.services import connectors

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


class ConnectRequest(BaseModel):
    """What veri-sdk sends (keys left out when falsy); ``hf_dataset``/``hf_config`` are the 0.2.10 README names."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    source_type: str | None = None
    huggingface_dataset: str | None = None
    huggingface_config: dict[str, Any] | str | None = None
    hf_dataset: str | None = None
    hf_config: dict[str, Any] | str | None = None
    source_uri: str | None = None
    credentials: dict[str, Any] | None = None
    db_connection: str | None = None
    db_query: str | None = None
    volume: Any = None
    volume_path: str | None = None


@router.post("/connect", status_code=201)
def connect_dataset(body: ConnectRequest, principal: PrincipalDep, ctx: CtxDep, response: Response) -> dict:
    """Snapshot a connected source into a dataset; the same name and source return the existing one (200)."""
    ds, created = connectors.connect(ctx.db, ctx.blobs, ctx.settings, principal.org_id, body.model_dump())
    if not created:
        response.status_code = 200
    return dataset_json(ds)


@router.post("/connect/validate")
def validate_connection(body: ConnectRequest, principal: PrincipalDep, ctx: CtxDep) -> dict:
    """Read and check a source without storing it: ``valid``, ``num_rows``, ``format``, a preview or a ``reason``."""
    return connectors.validate(ctx.settings, body.model_dump())
