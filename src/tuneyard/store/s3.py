"""Blob storage in an S3-compatible bucket (AWS S3, MinIO, …): ``TUNEYARD_STORAGE_URL=s3://bucket/prefix``.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role); ``TUNEYARD_S3_ENDPOINT_URL`` points at a non-AWS store. Uploads go through boto3's
transfer manager (multipart above 64 MiB, parts in parallel), downloads stream, and download links
are presigned S3 URLs, so checkpoint bytes never pass through tuneyard.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

MULTIPART_BYTES = 64 * 1024 * 1024


def s3_client(endpoint_url: str | None = None):
    import boto3
    from botocore.config import Config

    # A custom endpoint (MinIO, moto, …) is usually reached by address: path-style requests.
    style = "path" if endpoint_url else "auto"
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}, retries={"mode": "standard"}))


class _Body(io.RawIOBase):
    """A streaming S3 body as a raw stream, so ``io.BufferedReader`` gives it lines and ``read(n)``."""

    def __init__(self, body):
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str, *, scratch_root: Path, endpoint_url: str | None = None,
                 public_endpoint_url: str | None = None):
        if not bucket:
            raise ValueError("TUNEYARD_STORAGE_URL=s3://… needs a bucket name")
        from boto3.s3.transfer import TransferConfig

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.client = s3_client(endpoint_url)
        # Links for browsers and other machines may need another address than the one we use.
        self._signer = s3_client(public_endpoint_url) if public_endpoint_url else self.client
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES)
        self.scratch_root = Path(scratch_root)
        self.scratch_root.mkdir(parents=True, exist_ok=True)

    def _key(self, key: str) -> str:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"bad blob key {key!r}")
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def tempdir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.scratch_root))

    def put_file(self, key: str, path: Path) -> None:
        # An S3 object appears whole or not at all, multipart included.
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)

    def open(self, key: str) -> BinaryIO:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return io.BufferedReader(_Body(body), buffer_size=1 << 20)

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(key)
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix).rstrip("/") + "/")
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def delete_prefix(self, prefix: str) -> None:
        batch: list[str] = []
        for full in self._iter_keys(prefix):
            batch.append(full)
            if len(batch) == 1000:
                self._delete_many(batch)
                batch = []
        if batch:
            self._delete_many(batch)

    def _delete_many(self, keys: list[str]) -> None:
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})

    def list(self, prefix: str) -> list[str]:
        return sorted(self._strip(k) for k in self._iter_keys(prefix))

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def presigned_url(self, key: str, ttl_seconds: int, filename: str) -> str | None:
        return self._signer.generate_presigned_url(
            "get_object", ExpiresIn=ttl_seconds,
            Params={"Bucket": self.bucket, "Key": self._key(key),
                    "ResponseContentDisposition": f'attachment; filename="{filename}"'})
