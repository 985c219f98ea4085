"""``/v1/datasets``: multipart JSONL upload, list, get, delete (connectors live in datasets_connect)."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso, list_envelope
from tuneyard.errors import PayloadTooLarge
from tuneyard.services import datasets
from tuneyard.services.pagination import owned, page
from tuneyard.store.models import Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def dataset_json(ds: Dataset, preview: list[dict] | None = None) -> dict:
    body = {
        "id": ds.id, "object": "dataset", "name": ds.name, "format": ds.format, "num_rows": ds.num_rows,
        "bytes": ds.bytes, "sha256": ds.sha256, "filename": ds.filename, "columns": ds.columns,
        "source_type": ds.source_type, "source_uri": ds.source_uri,
        "huggingface_dataset": ds.source_config.get("huggingface_dataset") if ds.source_type == "hf" else None,
        "created_at": iso(ds.created_at),
    }
    if preview is not None:
        body["preview"] = preview
    return body


def reject_oversized(request: Request, max_bytes: int) -> None:
    """Refuse before reading the body when the client declares a size over the limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise PayloadTooLarge(f"Upload is larger than the limit of {max_bytes} bytes", param="file")


@router.post("", status_code=201)
def upload_dataset(request: Request, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                   file: UploadFile = File(...), name: str | None = Form(None)) -> dict:
    reject_oversized(request, ctx.settings.max_upload_bytes)
    ds = datasets.create_from_upload(session, ctx.blobs, principal.org_id, name=name, filename=file.filename,
                                     stream=file.file, max_bytes=ctx.settings.max_upload_bytes)
    return dataset_json(ds)


@router.get("")
def list_datasets(principal: PrincipalDep, session: SessionDep, limit: int = Query(20),
                  after: str | None = None) -> dict:
    rows, has_more = page(session, owned(Dataset, principal.org_id), Dataset, limit=limit, after=after)
    return list_envelope([dataset_json(d) for d in rows], has_more)


@router.get("/{ds_id}")
def get_dataset(ds_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                include_preview: bool = True) -> dict:
    ds = datasets.get(session, principal.org_id, ds_id)
    return dataset_json(ds, datasets.preview(ctx.blobs, ds) if include_preview else None)


@router.delete("/{ds_id}")
def delete_dataset(ds_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    ds = datasets.delete(session, ctx.blobs, principal.org_id, ds_id)
    return {"id": ds.id, "object": "dataset", "deleted": True}
