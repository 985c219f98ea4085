"""What a running tuneyard process holds: settings, the database and blob storage."""

from __future__ import annotations

from dataclasses import dataclass

from tuneyard.settings import Settings, get_settings
from tuneyard.store.blobs import BlobStore, make_blob_store
from tuneyard.store.db import Database


@dataclass
class Context:
    settings: Settings
    db: Database
    blobs: BlobStore

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Context:
        settings = settings or get_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url, info={"settings": settings}),
            blobs=make_blob_store(settings.storage_url, settings.blob_root,
                                  endpoint_url=settings.s3_endpoint_url,
                                  public_endpoint_url=settings.s3_public_endpoint_url),
        )
