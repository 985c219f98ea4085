"""The web dashboard: ``/`` serves its page, ``/assets/...`` its static files (ES modules, CSS).

Plain files under ``tuneyard/web`` (no build step, nothing generated). The page routes on the URL
fragment (``/#/jobs/job_…``), so the server needs no catch-all route and cannot shadow ``/v1``,
``/api``, ``/health`` or ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Revalidate on every load: the files change with the installed version, and they are small.
NO_CACHE = {"Cache-Control": "no-cache"}


class _Assets(StaticFiles):
    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers.update(NO_CACHE)
        return response


def install(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=NO_CACHE)

    @app.get("/dashboard", include_in_schema=False)
    def dashboard_alias() -> RedirectResponse:
        return RedirectResponse("/")

    app.mount("/assets", _Assets(directory=WEB_DIR / "assets"), name="dashboard-assets")
