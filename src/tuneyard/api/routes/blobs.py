"""``/v1/blobs/{key}``: signed, expiring downloads (no Authorization header needed)."""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from tuneyard.api.deps import CtxDep
from tuneyard.errors import NotFound
from tuneyard.services import signing

router = APIRouter(prefix="/v1/blobs", tags=["downloads"])


@router.get("/{key:path}")
def download_blob(key: str, ctx: CtxDep, expires: int = Query(...), signature: str = Query(...)):
    signing.verify(ctx.settings, key, expires, signature)
    if not ctx.blobs.exists(key):
        raise NotFound("This file no longer exists")
    name = PurePosixPath(key).name
    return StreamingResponse(ctx.blobs.iter_bytes(key), media_type="application/octet-stream",
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Content-Length": str(ctx.blobs.size(key))})
