"""Blob storage for datasets, reward files and checkpoints: a local folder by default.

Keys are ``/``-separated names chosen by the services (never user filenames), e.g.
``orgs/org_x/datasets/ds_y.jsonl``. Writes are atomic: a blob appears whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class BlobStore(Protocol):
    def put_file(self, key: str, path: Path) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def tempdir(self) -> Path: ...
    def url(self, key: str) -> str:
        """Where a runner on another machine reads or writes ``key`` (``file://`` or ``s3://``)."""
    def presigned_url(self, key: str, ttl_seconds: int, filename: str) -> str | None:
        """A download URL the store itself signs (S3), or None when tuneyard's own signed URLs serve it."""


class LocalBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".tmp").mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"bad blob key {key!r}")
        return self.root.joinpath(*parts)

    def tempdir(self) -> Path:
        """A scratch folder on the same filesystem, so ``put_file`` can be a rename."""
        return Path(tempfile.mkdtemp(dir=self.root / ".tmp"))

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self.open(key) as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            f"{prefix.rstrip('/')}/{p.relative_to(base).as_posix()}" for p in base.rglob("*") if p.is_file()
        )

    def url(self, key: str) -> str:
        return self._path(key).resolve().as_uri()

    def presigned_url(self, key: str, ttl_seconds: int, filename: str) -> str | None:
        return None


def make_blob_store(storage_url: str, default_root: Path, *, endpoint_url: str | None = None,
                    public_endpoint_url: str | None = None, **_: object) -> BlobStore:
    if not storage_url or storage_url.startswith("file://") or "://" not in storage_url:
        root = Path(storage_url.removeprefix("file://")) if storage_url else default_root
        return LocalBlobStore(root)
    if storage_url.startswith("s3://"):
        from tuneyard.store.s3 import S3BlobStore

        bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
        return S3BlobStore(bucket, prefix, scratch_root=default_root.parent / "tmp", endpoint_url=endpoint_url,
                           public_endpoint_url=public_endpoint_url)
    raise ValueError(f"unsupported TUNEYARD_STORAGE_URL {storage_url!r} (supported: a folder path, file://, s3://)")
