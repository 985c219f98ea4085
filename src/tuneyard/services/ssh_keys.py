"""SSH key pairs for GPU hosts: validated as a matching pair, private half encrypted at rest."""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidRequest, NotFound
from tuneyard.ids import new_id
from tuneyard.services import secrets
from tuneyard.settings import Settings
from tuneyard.store.models import SshKey


def _public_openssh(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def fingerprint(public_openssh: bytes) -> str:
    blob = base64.b64decode(public_openssh.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def create(session: Session, settings: Settings, org_id: str, *, name: str, public_key: str,
           private_key: str, provider: str | None = None) -> SshKey:
    if not name.strip():
        raise InvalidRequest("name must not be empty", param="name")
    try:
        pub = serialization.load_ssh_public_key(public_key.strip().encode())
    except (ValueError, IndexError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidRequest(f"public_key is not a valid OpenSSH public key: {exc}", param="public_key") from exc
    try:
        priv = _load_private(private_key)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidRequest(f"private_key is not a valid unencrypted private key: {exc}",
                             param="private_key") from exc
    pub_bytes = _public_openssh(pub)
    try:
        priv_pub_bytes = _public_openssh(priv.public_key())
    except (ValueError, TypeError, AttributeError) as exc:  # e.g. an X25519 or DH key: not an SSH key type
        raise InvalidRequest(f"private_key is not an SSH key type: {exc}", param="private_key") from exc
    if priv_pub_bytes != pub_bytes:
        raise InvalidRequest("private_key does not match public_key", param="private_key",
                             code="key_mismatch")
    key = SshKey(id=new_id("ssh_key"), org_id=org_id, name=name.strip(), provider=provider,
                 public_key=pub_bytes.decode(), fingerprint=fingerprint(pub_bytes),
                 key_type=pub_bytes.split()[0].decode(),
                 private_key_encrypted=secrets.encrypt(settings, private_key.encode()))
    session.add(key)
    session.flush()
    return key


def _load_private(text: str):
    data = text.strip().encode() + b"\n"
    if b"OPENSSH PRIVATE KEY" in data:
        return serialization.load_ssh_private_key(data, password=None)
    return serialization.load_pem_private_key(data, password=None)


def get(session: Session, org_id: str, key_id: str) -> SshKey:
    key = session.execute(select(SshKey).where(SshKey.id == key_id, SshKey.org_id == org_id)).scalar()
    if key is None:
        raise NotFound(f"No SSH key {key_id!r}", param="id")
    return key


def delete(session: Session, org_id: str, key_id: str) -> SshKey:
    key = get(session, org_id, key_id)
    session.delete(key)
    return key


def private_key_of(settings: Settings, key: SshKey) -> str:
    """Only executors call this, to reach a host; the API never returns key material."""
    return secrets.decrypt(settings, key.private_key_encrypted).decode()
