"""The bearer token a remote deployment worker requires.

A worker on this host listens on loopback; one on a Ray node or an SSH host listens on the network,
so it takes requests only with ``Authorization: Bearer <token>``. The token is derived from the master
key (the same in every tuneyard process), the deployment id and a nonce made at each launch; only the
nonce is stored (in the worker handle, as ``auth``), so the database never holds a usable secret and
every replica's gateway can compute the header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from tuneyard.services import secrets
from tuneyard.settings import Settings

ENV = "TUNEYARD_WORKER_TOKEN"  # how the worker receives it (never on its command line)


def new_nonce() -> str:
    return _secrets.token_hex(8)


def token(settings: Settings, deployment_id: str, nonce: str) -> str:
    key = hashlib.sha256(b"tuneyard-worker-token:" + secrets.master_key(settings)).digest()
    return hmac.new(key, f"{deployment_id}\n{nonce}".encode(), hashlib.sha256).hexdigest()


def headers(settings: Settings, deployment_id: str, nonce: str | None) -> dict[str, str]:
    """The header for a worker launched with ``nonce`` (none for a worker without a token)."""
    return {"authorization": f"Bearer {token(settings, deployment_id, nonce)}"} if nonce else {}
