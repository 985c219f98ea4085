"""Datasets: JSONL uploads and connected sources, checked line by line and kept in blob storage.

Every dataset, however it arrived, is stored as one JSONL blob, so training never needs the
original source (or its credentials) again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.errors import Conflict, InvalidRequest, NotFound
from tuneyard.ids import new_id
from tuneyard.services.dataset_formats import DatasetError, Summary, check_rows, parse_jsonl_lines
from tuneyard.services.uploads import Received, clean_name, copy_limited, scratch
from tuneyard.store.blobs import BlobStore
from tuneyard.store.db import after_commit
from tuneyard.store.models import Dataset, TrainingJob

ACTIVE_JOB_STATUSES = ("queued", "provisioning", "running")


def check_jsonl_file(path: Path) -> Summary:
    try:
        with open(path, "rb") as f:
            return check_rows(parse_jsonl_lines(f))
    except DatasetError as exc:
        raise InvalidRequest(f"Invalid dataset: {exc}", param="file", code="invalid_dataset") from None


def _store(session: Session, blobs: BlobStore, org_id: str, received: Received, summary: Summary, *,
           name: str, filename: str | None, source_type: str = "upload", source_uri: str | None = None,
           source_config: dict | None = None, purpose: str | None = None) -> Dataset:
    ds_id = new_id("dataset")
    key = f"orgs/{org_id}/datasets/{ds_id}.jsonl"
    blobs.put_file(key, received.path)
    ds = Dataset(id=ds_id, org_id=org_id, name=name, format=summary.format, num_rows=summary.num_rows,
                 bytes=received.size, sha256=received.sha256, blob_key=key, filename=filename,
                 columns=summary.columns, source_type=source_type, source_uri=source_uri,
                 source_config=source_config or {}, purpose=purpose)
    session.add(ds)
    try:
        session.flush()
    except Exception:
        blobs.delete(key)
        raise
    return ds


def create_from_upload(session: Session, blobs: BlobStore, org_id: str, *, name: str | None,
                       filename: str | None, stream, max_bytes: int, purpose: str | None = None) -> Dataset:
    name = clean_name(name, filename)
    filename = (filename or "")[:300] or None
    with scratch(blobs) as tmp:
        received = copy_limited(stream, tmp / "data.jsonl", max_bytes)
        summary = check_jsonl_file(received.path)
        return _store(session, blobs, org_id, received, summary, name=name, filename=filename, purpose=purpose)


def create_from_rows(session: Session, blobs: BlobStore, org_id: str, rows: Iterable[dict[str, Any]], *,
                     name: str, source_type: str, source_uri: str | None, source_config: dict,
                     max_bytes: int) -> Dataset:
    """Snapshot rows from a connected source into a JSONL blob (the source is never read again)."""
    with scratch(blobs) as tmp:
        path = tmp / "data.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        with open(path, "rb") as f:
            received = copy_limited(f, tmp / "checked.jsonl", max_bytes)
        summary = check_jsonl_file(received.path)
        return _store(session, blobs, org_id, received, summary, name=name, filename=None,
                      source_type=source_type, source_uri=source_uri, source_config=source_config)


def get(session: Session, org_id: str, ds_id: str) -> Dataset:
    ds = session.execute(select(Dataset).where(Dataset.id == ds_id, Dataset.org_id == org_id)).scalar()
    if ds is None:
        raise NotFound(f"No dataset {ds_id!r}", param="id")
    return ds


def find_by_name(session: Session, org_id: str, name: str, source_type: str) -> Dataset | None:
    return session.execute(
        select(Dataset).where(Dataset.org_id == org_id, Dataset.name == name, Dataset.source_type == source_type)
        .order_by(Dataset.seq.desc())
    ).scalars().first()


def preview(blobs: BlobStore, ds: Dataset, rows: int = 5) -> list[dict]:
    out: list[dict] = []
    with blobs.open(ds.blob_key) as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
                if len(out) >= rows:
                    break
    return out


def delete(session: Session, blobs: BlobStore, org_id: str, ds_id: str) -> Dataset:
    ds = get(session, org_id, ds_id)
    job = session.execute(select(TrainingJob.id).where(TrainingJob.dataset_id == ds_id)).scalars().first()
    if job is not None:
        raise Conflict(f"Dataset {ds_id} is used by training job {job} and cannot be deleted", param="id",
                       code="dataset_in_use")
    session.delete(ds)
    session.flush()
    after_commit(session, lambda: blobs.delete(ds.blob_key))
    return ds
