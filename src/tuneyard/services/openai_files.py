"""Files of the OpenAI API (``/api/v1/files``): a ``fine-tune`` file *is* a dataset.

Uploads go through the same checks as ``/v1/datasets`` (chat ``messages`` with at least two
non-empty messages, ``prompt``/``completion``, or ``prompt``/``chosen``/``rejected`` rows); the
row is the dataset, listed by ``/v1/datasets`` too, with its OpenAI purpose kept on it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest, NotFound
from tuneyard.services import datasets
from tuneyard.services.openai_ids import to_native, to_openai, unix
from tuneyard.store.blobs import BlobStore
from tuneyard.store.models import Dataset

PURPOSES = ("fine-tune",)


def check_purpose(purpose: str | None) -> str:
    purpose = (purpose or "").strip()
    if not purpose:
        raise InvalidRequest("purpose is required: 'fine-tune' (as a form field or in the query string)",
                             param="purpose", code="missing_required_parameter")
    if purpose not in PURPOSES:
        raise InvalidRequest(f"purpose {purpose!r} is not supported here; supported: {', '.join(PURPOSES)}",
                             param="purpose", code="invalid_purpose")
    return purpose


def upload(session: Session, blobs: BlobStore, org_id: str, *, purpose: str | None, filename: str | None,
           stream, max_bytes: int) -> Dataset:
    purpose = check_purpose(purpose)
    return datasets.create_from_upload(session, blobs, org_id, name=None, filename=filename, stream=stream,
                                       max_bytes=max_bytes, purpose=purpose)


def get(session: Session, org_id: str, file_id: str, param: str = "file_id") -> Dataset:
    try:
        return datasets.get(session, org_id, to_native("file", file_id))
    except NotFound:
        raise NotFound(f"No such File object: {file_id}", param=param) from None


def file_json(ds: Dataset) -> dict:
    return {"id": to_openai("file", ds.id), "object": "file", "bytes": ds.bytes, "created_at": unix(ds.created_at),
            "filename": ds.filename or f"{ds.name}.jsonl", "purpose": ds.purpose or "fine-tune",
            "status": "processed", "status_details": None, "expires_at": None,
            # tuneyard's view of the same row
            "dataset_id": ds.id, "format": ds.format, "num_rows": ds.num_rows}
