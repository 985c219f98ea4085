"""Expiring signed URLs for blobs (checkpoint downloads), fetchable without the Authorization header.

The signature is an HMAC-SHA256 over the blob key and expiry, keyed by a secret derived from
the master key, so every replica sharing the master key verifies the same URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

from tuneyard.errors import NotFound
from tuneyard.services import secrets
from tuneyard.settings import Settings
from tuneyard.store.blobs import BlobStore


def _secret(settings: Settings) -> bytes:
    return hashlib.sha256(b"tuneyard-blob-url:" + secrets.master_key(settings)).digest()


def _signature(settings: Settings, key: str, expires: int) -> str:
    return hmac.new(_secret(settings), f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(settings: Settings, base_url: str, key: str, ttl_seconds: int | None = None) -> tuple[str, int]:
    expires = int(time.time()) + (ttl_seconds or settings.signed_url_ttl_seconds)
    query = urlencode({"expires": expires, "signature": _signature(settings, key, expires)})
    return f"{base_url.rstrip('/')}/v1/blobs/{quote(key)}?{query}", expires


def download_url(settings: Settings, blobs: BlobStore, base_url: str, key: str) -> tuple[str, int]:
    """An expiring link to a blob: presigned by the object store when there is one (the bytes then
    never pass through tuneyard), else signed by us and served by ``/v1/blobs``."""
    ttl = settings.signed_url_ttl_seconds
    presigned = blobs.presigned_url(key, ttl, key.rsplit("/", 1)[-1])
    if presigned:
        return presigned, int(time.time()) + ttl
    return signed_url(settings, base_url, key, ttl)


def verify(settings: Settings, key: str, expires: int, signature: str) -> None:
    """NotFound (never a hint about why) unless the signature is right and unexpired."""
    good = hmac.compare_digest(_signature(settings, key, expires), signature or "")
    if not good or expires < time.time():
        raise NotFound("This download link is invalid or has expired")
