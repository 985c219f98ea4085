"""Receiving an uploaded file: copied in chunks to a scratch file with a size cap and a SHA-256.

Nothing reaches blob storage until the caller has validated the scratch copy, so a rejected
upload leaves nothing behind. The client's filename never becomes a filesystem path.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tuneyard.errors import InvalidRequest, PayloadTooLarge
from tuneyard.store.blobs import BlobStore

CHUNK = 1 << 20


@dataclass
class Received:
    path: Path
    size: int
    sha256: str


def copy_limited(src: BinaryIO, dest: Path, max_bytes: int, param: str = "file") -> Received:
    digest = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        while chunk := src.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"File is larger than the limit of {max_bytes} bytes", param=param)
            digest.update(chunk)
            out.write(chunk)
    return Received(dest, size, digest.hexdigest())


@contextmanager
def scratch(blobs: BlobStore) -> Iterator[Path]:
    """A scratch folder removed afterwards, whatever happens."""
    path = blobs.tempdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


MAX_NAME = 200


def clean_name(name: str | None, filename: str | None) -> str:
    """The resource name: as given (at most 200 characters), else the uploaded file's stem."""
    name = (name or "").strip()
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"name must be at most {MAX_NAME} characters", param="name")
    return name or Path(filename or "dataset").stem[:MAX_NAME] or "dataset"
