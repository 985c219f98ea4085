"""The Synth / OpenAI-compatible surface (``/api/v1`` and the ``/api`` aliases ``synth-ai`` calls).

Thin adapters over the same services ``/v1`` uses (DESIGN.md §1); see docs/synth-api.md. The files,
fine-tuning and models handlers are mounted once per prefix: ``/api/v1/...`` (documented in the
OpenAPI schema) and the aliases synth-ai 0.2.6's ``JobsClient`` (``/api/files``, ``/api/sft/jobs``,
``/api/models``) and learning clients (``/api/learning/files|jobs|models``) call.
"""

from fastapi import APIRouter

from tuneyard.api.synth import balance, files, fine_tuning, inference, models


def _mount(*parts: tuple[APIRouter, str, bool]) -> APIRouter:
    """One router holding each ``(router, prefix, in_schema)`` under its prefix, in order (first match wins)."""
    outer = APIRouter()
    for router, prefix, in_schema in parts:
        outer.include_router(router, prefix=prefix, include_in_schema=in_schema)
    return outer


files_routes = _mount(
    (files.router, "/api/v1/files", True),
    (files.router, "/api/files", False), (fine_tuning.file_jobs_router, "/api/files", False),
    (files.router, "/api/learning/files", False), (fine_tuning.file_jobs_router, "/api/learning/files", False))
jobs_routes = _mount(
    (fine_tuning.router, "/api/v1/fine_tuning/jobs", True),
    (fine_tuning.router, "/api/sft/jobs", False),
    (fine_tuning.router, "/api/learning/jobs", False), (fine_tuning.learning_router, "/api/learning/jobs", False))
models_routes = _mount(
    (models.listing, "/api/v1/models", True), (models.items, "/api/v1/models", True),
    # /{model}/jobs before /{model:path}, which would take it otherwise
    (models.listing, "/api/models", False), (fine_tuning.model_jobs_router, "/api/models", False),
    (models.items, "/api/models", False),
    (models.learning_listing, "/api/learning/models", False), (models.items, "/api/learning/models", False))

routers = [files_routes, jobs_routes, models_routes, *balance.routers, *inference.routers]
