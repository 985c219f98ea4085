"""``/api/v1/files``: OpenAI's Files API over datasets (a ``fine-tune`` file is a dataset).

Mounted (api/synth/__init__.py) at ``/api/v1/files`` and at the aliases ``/api/files`` (synth-ai's
``JobsClient``) and ``/api/learning/files`` (``LearningClient``, ``FtClient``)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.routes.datasets import reject_oversized
from tuneyard.api.synth.common import openai_list, openai_page
from tuneyard.errors import InvalidRequest
from tuneyard.services import datasets, openai_files
from tuneyard.services.openai_ids import to_openai
from tuneyard.services.pagination import owned
from tuneyard.store.models import Dataset

router = APIRouter(tags=["synth: files"])
MAX_PAGE = 100


@router.post("")
async def upload_file(request: Request, principal: PrincipalDep, ctx: CtxDep,
                      purpose: str | None = Query(None, description="also accepted as a form field")) -> dict:
    """Multipart ``file`` plus ``purpose`` (form field or query string); 200 with the file object."""
    reject_oversized(request, ctx.settings.max_upload_bytes)
    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body: the parser's own message
        raise InvalidRequest(f"Could not read the multipart form: {exc}", param="file") from None
    upload = form.get("file")
    if not isinstance(upload, (UploadFile, StarletteUpload)):
        raise InvalidRequest("Missing required parameter: 'file' (a multipart file part)", param="file",
                             code="missing_required_parameter")
    form_purpose = form.get("purpose")
    chosen = form_purpose if isinstance(form_purpose, str) and form_purpose.strip() else purpose

    def store() -> dict:
        with ctx.db.session() as session:
            ds = openai_files.upload(session, ctx.blobs, principal.org_id, purpose=chosen, filename=upload.filename,
                                     stream=upload.file, max_bytes=ctx.settings.max_upload_bytes)
            return openai_files.file_json(ds)

    try:
        return await run_in_threadpool(store)
    finally:
        await form.close()


@router.get("")
def list_files(principal: PrincipalDep, session: SessionDep, purpose: str | None = None,
               limit: int = Query(MAX_PAGE, ge=1, le=10000), after: str | None = None,
               order: str = Query("desc", pattern="^(asc|desc)$")) -> dict:
    if purpose and purpose not in openai_files.PURPOSES:
        return openai_list([], False)
    rows, has_more = openai_page(session, owned(Dataset, principal.org_id), Dataset, kind="file",
                                 limit=min(limit, MAX_PAGE), after=after, ascending=order == "asc")
    return openai_list([openai_files.file_json(d) for d in rows], has_more)


@router.get("/{file_id}")
def get_file(file_id: str, principal: PrincipalDep, session: SessionDep) -> dict:
    return openai_files.file_json(openai_files.get(session, principal.org_id, file_id))


@router.get("/{file_id}/content")
def file_content(file_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> StreamingResponse:
    ds = openai_files.get(session, principal.org_id, file_id)
    return StreamingResponse(ctx.blobs.iter_bytes(ds.blob_key), media_type="application/octet-stream",
                             headers={"Content-Length": str(ds.bytes)})


@router.delete("/{file_id}")
def delete_file(file_id: str, principal: PrincipalDep, session: SessionDep, ctx: CtxDep) -> dict:
    ds = openai_files.get(session, principal.org_id, file_id)
    datasets.delete(session, ctx.blobs, principal.org_id, ds.id)
    return {"id": to_openai("file", ds.id), "object": "file", "deleted": True}
