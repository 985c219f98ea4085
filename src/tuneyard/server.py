"""Starting a server process: migrations, first-start bootstrap, then uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from tuneyard.context import Context
from tuneyard.services import orgs
from tuneyard.store.db import MIGRATE_LOCK


def bootstrap_key_file(ctx: Context) -> Path:
    return ctx.settings.data_dir / "bootstrap_api_key"


def prepare(ctx: Context) -> Path | None:
    """Migrate the database; on first start create the default org and key.

    Returns the path of the file holding the new key when one was created.
    """
    ctx.db.migrate()
    with ctx.db.session() as session:
        if ctx.db.is_postgres:  # several replicas starting at once create the default org once
            session.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})"))
        created = orgs.bootstrap(session, bootstrap_key=ctx.settings.bootstrap_key,
                                 initial_credit_usd=ctx.settings.initial_credit_usd)
    if created is None:
        return None
    _, plaintext = created
    path = bootstrap_key_file(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(plaintext + "\n")
    return path
