"""Encryption at rest for stored credentials (SSH private keys), with Fernet (AES-128-CBC + HMAC).

The master key comes from ``TUNEYARD_MASTER_KEY`` or, failing that, a 0600 file created in the
data dir on first use. Losing that file makes stored secrets unreadable, by design.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from tuneyard.settings import Settings


def master_key(settings: Settings) -> bytes:
    if settings.master_key:
        return settings.master_key.encode()
    path = settings.data_dir / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    return Path(path).read_bytes().strip()


def encrypt(settings: Settings, plaintext: bytes) -> str:
    return Fernet(master_key(settings)).encrypt(plaintext).decode()


def decrypt(settings: Settings, token: str) -> bytes:
    return Fernet(master_key(settings)).decrypt(token.encode())
