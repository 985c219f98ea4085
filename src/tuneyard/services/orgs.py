"""Organizations and API keys.

Keys are ``vk_`` + 32 random bytes (urlsafe base64). Only their SHA-256 is stored; the plaintext
is returned once, at creation. Every request looks the hash up again, so a revoked key is refused
on the very next request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneyard.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from tuneyard.ids import new_id
from tuneyard.store.models import ApiKey, CreditTransaction, Organization, utcnow

KEY_PREFIX = "vk_"
DEFAULT_ORG_NAME = "default"
# Writing last_used_at on every request would make every read a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Past this a datetime overflows; a key that should never expire simply has no expiry.
MAX_KEY_LIFETIME_SECONDS = 100 * 365 * 24 * 3600


@dataclass(frozen=True)
class Principal:
    org_id: str
    key_id: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_org(session: Session, name: str, *, initial_credit_usd: float = 0.0) -> Organization:
    name = name.strip()
    if not name:
        raise InvalidRequest("Organization name must not be empty", param="name")
    if session.execute(select(Organization).where(Organization.name == name)).scalar():
        raise Conflict(f"An organization named {name!r} already exists", param="name")
    org = Organization(id=new_id("org"), name=name)
    session.add(org)
    session.flush()
    if initial_credit_usd:
        session.add(CreditTransaction(
            id=new_id("transaction"), org_id=org.id, amount_usd=Decimal(str(initial_credit_usd)),
            kind="grant", description="Initial credit for a new organization", reference=org.id,
            idempotency_key=f"initial-grant:{org.id}"))
    return org


def get_org(session: Session, org_ref: str) -> Organization:
    org = session.execute(
        select(Organization).where((Organization.id == org_ref) | (Organization.name == org_ref))
    ).scalar()
    if org is None:
        raise NotFound(f"No organization {org_ref!r}")
    return org


def create_key(session: Session, org_id: str, name: str, *, plaintext: str | None = None,
               kind: str = "user", deployment_id: str | None = None,
               expires_in_seconds: int | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext (the only time it exists outside the client)."""
    plaintext = plaintext or generate_key()
    if not plaintext.startswith(KEY_PREFIX) or len(plaintext) < 20:
        raise InvalidRequest("API keys must start with 'vk_' and be at least 20 characters", param="key")
    if kind not in ("user", "model_access"):
        raise InvalidRequest("kind must be 'user' or 'model_access'", param="kind")
    if expires_in_seconds is not None and not 0 < expires_in_seconds <= MAX_KEY_LIFETIME_SECONDS:
        raise InvalidRequest(f"expires_in_seconds must be between 1 and {MAX_KEY_LIFETIME_SECONDS} (100 years); "
                             "leave it out for a key that does not expire", param="expires_in_seconds")
    key = ApiKey(
        id=new_id("api_key"), org_id=org_id, name=name or "default", kind=kind,
        key_hash=hash_key(plaintext), key_prefix=plaintext[:10], deployment_id=deployment_id,
        expires_at=utcnow() + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None,
    )
    session.add(key)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("That key already exists") from exc
    return key, plaintext


def authenticate(session: Session, plaintext: str | None) -> Principal:
    if not plaintext:
        raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer vk_...'", code="missing_api_key")
    key = session.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext))).scalar()
    now = utcnow()
    if key is None or key.revoked_at is not None:
        raise AuthenticationFailed("Invalid API key")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthenticationFailed("API key has expired", code="expired_api_key")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return Principal(org_id=key.org_id, key_id=key.id)


def list_keys_query(org_id: str):
    return select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))


def revoke_key(session: Session, org_id: str, key_id: str) -> ApiKey:
    key = session.execute(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
    ).scalar()
    if key is None:
        raise NotFound(f"No API key {key_id!r}", param="id")
    key.revoked_at = utcnow()
    return key


def bootstrap(session: Session, *, bootstrap_key: str | None,
              initial_credit_usd: float) -> tuple[Organization, str] | None:
    """On an empty database, create the default organization and its first key.

    Returns ``(org, plaintext)`` when it created them, ``None`` when organizations already exist.
    """
    if session.execute(select(Organization.seq).limit(1)).first() is not None:
        return None
    org = create_org(session, DEFAULT_ORG_NAME, initial_credit_usd=initial_credit_usd)
    _, plaintext = create_key(session, org.id, "bootstrap", plaintext=bootstrap_key)
    return org, plaintext

