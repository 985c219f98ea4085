"""``/v1/cost``: the GPU rate catalog, estimates, comparisons, projections and spend reports.

The veri SDK renders these payloads verbatim (sdk-contracts A.4.6); ``rates`` is the flat list
shape every SDK version reads.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from tuneyard.api.deps import CtxDep, PrincipalDep, SessionDep
from tuneyard.api.schemas import iso
from tuneyard.services import cluster, costs, metering, rates, spend

router = APIRouter(prefix="/v1/cost", tags=["cost"])


def _dates(payload: dict) -> dict:
    for key in ("period_start", "period_end"):
        if key in payload:
            payload[key] = iso(payload[key])
    return payload


def _default_gpu() -> str:
    return next(iter(cluster.local_inventory()))


@router.get("/rates")
def get_rates(principal: PrincipalDep, ctx: CtxDep) -> dict:
    rows = rates.all_rates(ctx.settings)
    return {"object": "gpu_rates", "rates": [r.as_json() for r in rows], "updated_at": rates.updated_at(ctx.settings),
            "gpu_types": sorted({r.gpu_type for r in rows}), "providers": sorted({r.provider for r in rows}),
            "currency": "usd", "unit": "gpu_hour"}


@router.get("/estimate")
def get_estimate(principal: PrincipalDep, ctx: CtxDep, gpu_type: str | None = None,
                 gpu_count: int = Query(1, ge=1, le=1024), duration_minutes: float = Query(60, ge=0, le=525_600),
                 provider: str | None = None, markup: float | None = None) -> dict:
    return costs.estimate(ctx.settings, gpu_type or _default_gpu(), gpu_count, duration_minutes, provider, markup)


@router.get("/compare")
def get_compare(principal: PrincipalDep, ctx: CtxDep, gpu_type: str | None = None,
                gpu_count: int = Query(1, ge=1, le=1024), duration_minutes: float = Query(60, ge=0, le=525_600),
                markup: float | None = None) -> dict:
    return costs.compare(ctx.settings, gpu_type or _default_gpu(), gpu_count, duration_minutes, markup)


@router.get("/monthly_projection")
def get_monthly_projection(principal: PrincipalDep, session: SessionDep, ctx: CtxDep,
                           jobs_per_day: float = Query(1, ge=0, le=10_000),
                           avg_duration_minutes: float = Query(60, ge=0, le=43_200), gpu_type: str | None = None,
                           gpu_count: int = Query(1, ge=1, le=1024), provider: str | None = None,
                           markup: float | None = None) -> dict:
    serving = [{"id": i["id"], "status": i["status"], "gpu": i["gpu"], "provider": i["provider"],
                "usd_per_hour": i["usd_per_hour"]}
               for i in metering.running_items(session, principal.org_id) if i["kind"] == "deployment"]
    return costs.monthly_projection(ctx.settings, jobs_per_day=jobs_per_day, avg_duration_minutes=avg_duration_minutes,
                                    gpu_type=gpu_type or _default_gpu(), gpu_count=gpu_count, provider=provider,
                                    markup=markup, serving=serving)


@router.get("/summary")
def get_summary(principal: PrincipalDep, session: SessionDep, days: int = Query(30)) -> dict:
    return _dates(spend.summary(session, principal.org_id, days))


@router.get("/by_provider")
def get_by_provider(principal: PrincipalDep, session: SessionDep, days: int = Query(30)) -> dict:
    return _dates(spend.breakdown(session, principal.org_id, days, "provider"))


@router.get("/by_gpu")
def get_by_gpu(principal: PrincipalDep, session: SessionDep, days: int = Query(30)) -> dict:
    return _dates(spend.breakdown(session, principal.org_id, days, "gpu_type"))
