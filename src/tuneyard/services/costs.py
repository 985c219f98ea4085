"""Cost arithmetic: estimates, provider comparisons, monthly projections, and the hourly price of
running work.

One price model serves estimates and metering alike, so an estimate is what the meter would charge
for the same duration: an hour of work costs ``(GPU rate x count + its scratch storage) x markup``.
An estimate adds the start-up time (provisioning, model load) that metering bills too, as
``overhead_cost_usd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from tuneyard.errors import InvalidRequest
from tuneyard.services import cluster, rates
from tuneyard.settings import Settings

HOURS_PER_MONTH = Decimal(730)  # 365 * 24 / 12
CENT = Decimal("0.000001")  # ledger precision (Numeric(18, 6))
METHOD_STEP_FACTOR = {"sft": 1.0, "dpo": 2.0, "grpo": 4.0}


def q(value: Decimal) -> Decimal:
    """Round to the ledger's precision, half up (never banker's rounding on money)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal | None) -> float | None:
    return None if value is None else float(q(value))


@dataclass(frozen=True)
class Price:
    """What one hour of a GPU shape costs at one provider, split the way estimates show it."""

    rate: rates.Rate
    gpu_count: int
    storage_usd_per_hour: Decimal
    markup: Decimal

    @property
    def gpu_usd_per_hour(self) -> Decimal:
        return self.rate.usd_per_hour * self.gpu_count

    @property
    def usd_per_hour(self) -> Decimal:
        """Everything per hour, markup included: what the meter charges."""
        return (self.gpu_usd_per_hour + self.storage_usd_per_hour) * self.markup

    def cost(self, seconds: float | Decimal) -> Decimal:
        return self.usd_per_hour * Decimal(str(seconds)) / 3600


def check_markup(markup: float) -> Decimal:
    if not 0 < markup <= 10:
        raise InvalidRequest("markup must be above 0 and at most 10", param="markup")
    return Decimal(str(markup))


def price(settings: Settings, provider: str, gpu_type: str, gpu_count: int, markup: float | None = None) -> Price:
    storage = (Decimal(str(settings.storage_gb_per_workload)) * Decimal(str(settings.storage_usd_per_gb_month))
               / HOURS_PER_MONTH)
    return Price(rates.job_rate(settings, provider, gpu_type), gpu_count, storage,
                 check_markup(settings.billing_markup if markup is None else markup))


def default_provider(settings: Settings, gpu_type: str) -> str:
    """Without a provider: where this cluster would run it, else the cheapest provider offering it."""
    canonical = cluster.canonical_gpu_type(gpu_type)
    try:
        return rates.choose_provider(settings, canonical, None)
    except InvalidRequest:
        return rates.offers(settings, canonical)[0].provider


def estimate(settings: Settings, gpu_type: str, gpu_count: int = 1, duration_minutes: float = 60,
             provider: str | None = None, markup: float | None = None) -> dict:
    """``/v1/cost/estimate``: a GPU lease of ``duration_minutes`` plus start-up, itemised."""
    if gpu_count < 1:
        raise InvalidRequest("gpu_count must be at least 1", param="gpu_count")
    if duration_minutes < 0:
        raise InvalidRequest("duration_minutes must not be negative", param="duration_minutes")
    gpu_type = cluster.canonical_gpu_type(gpu_type)
    duration_minutes = int(duration_minutes) if float(duration_minutes).is_integer() else duration_minutes
    provider = (provider or "").strip().lower() or default_provider(settings, gpu_type)
    rates.lookup(settings, provider, gpu_type)  # 400 when that provider does not offer it
    p = price(settings, provider, gpu_type, gpu_count, markup)
    run_s = Decimal(str(duration_minutes)) * 60
    startup_s = Decimal(str(settings.estimate_startup_seconds))
    gpu_cost = p.gpu_usd_per_hour * run_s / 3600
    overhead_cost = p.gpu_usd_per_hour * startup_s / 3600
    storage_cost = p.storage_usd_per_hour * (run_s + startup_s) / 3600
    subtotal = q(gpu_cost) + q(overhead_cost) + q(storage_cost)
    total = q(subtotal * p.markup)
    spot = p.rate.spot_usd_per_hour
    spot_total = (q((spot * gpu_count * (run_s + startup_s) / 3600 + storage_cost) * p.markup)
                  if spot is not None else None)
    return {
        "object": "cost_estimate", "provider": provider, "gpu_type": gpu_type, "gpu_count": gpu_count,
        "duration_minutes": duration_minutes, "duration_seconds": float(run_s + startup_s),
        "run_seconds": float(run_s), "startup_seconds": float(startup_s),
        "usd_per_gpu_hour": float(p.rate.usd_per_hour), "usd_per_hour": money(p.usd_per_hour),
        "gpu_cost_usd": money(gpu_cost), "storage_cost_usd": money(storage_cost),
        "overhead_cost_usd": money(overhead_cost), "subtotal_usd": float(subtotal),
        "markup_multiplier": float(p.markup), "markup_usd": float(total - subtotal), "cost_usd": float(total),
        "spot_cost_usd": float(spot_total) if spot_total is not None else None,
        "currency": "usd", "rate_source": p.rate.source, "rate_as_of": p.rate.as_of,
    }


def compare(settings: Settings, gpu_type: str, gpu_count: int = 1, duration_minutes: float = 60,
            markup: float | None = None) -> dict:
    """``/v1/cost/compare``: the same estimate at every provider offering the GPU, cheapest first."""
    offers = rates.offers(settings, gpu_type)
    rows = [estimate(settings, gpu_type, gpu_count, duration_minutes, r.provider, markup) for r in offers]
    rows.sort(key=lambda e: (e["cost_usd"], e["provider"]))
    top = Decimal(str(rows[-1]["cost_usd"]))
    for e in rows:
        saving = top - Decimal(str(e["cost_usd"]))
        e["savings_usd"] = float(saving)
        e["savings_pct"] = float((saving / top * 100).quantize(Decimal("0.1"))) if top else 0.0
    return {
        "object": "cost_comparison", "gpu_type": rows[0]["gpu_type"], "gpu_count": gpu_count,
        "duration_minutes": duration_minutes, "providers": rows,
        "cheapest": {"provider": rows[0]["provider"], "cost_usd": rows[0]["cost_usd"]},
        "most_expensive": {"provider": rows[-1]["provider"], "cost_usd": rows[-1]["cost_usd"]},
        "max_savings_usd": rows[0]["savings_usd"], "max_savings_pct": rows[0]["savings_pct"], "currency": "usd",
    }


def monthly_projection(settings: Settings, *, jobs_per_day: float, avg_duration_minutes: float, gpu_type: str,
                       gpu_count: int, provider: str | None, markup: float | None,
                       serving: list[dict]) -> dict:
    """``/v1/cost/monthly_projection``: a training cadence for 30 days plus keeping today's
    deployments warm for a month (``serving`` lists them with their hourly price)."""
    if jobs_per_day < 0:
        raise InvalidRequest("jobs_per_day must not be negative", param="jobs_per_day")
    per_job = estimate(settings, gpu_type, gpu_count, avg_duration_minutes, provider, markup)
    total_jobs = Decimal(str(jobs_per_day)) * 30
    training = q(total_jobs * Decimal(str(per_job["cost_usd"])))
    keep_warm = q(sum((Decimal(str(d["usd_per_hour"])) for d in serving), Decimal(0)) * HOURS_PER_MONTH)
    return {
        "object": "cost_projection", "days": 30, "jobs_per_day": jobs_per_day, "total_jobs": float(total_jobs),
        "avg_duration_minutes": avg_duration_minutes, "gpu_type": per_job["gpu_type"], "gpu_count": gpu_count,
        "provider": per_job["provider"], "markup_multiplier": per_job["markup_multiplier"],
        "avg_cost_per_job_usd": per_job["cost_usd"], "training_monthly_usd": float(training),
        "keep_warm_monthly_usd": float(keep_warm), "total_monthly_usd": float(training + keep_warm),
        "deployments": serving, "hours_per_month": float(HOURS_PER_MONTH), "currency": "usd",
    }


def job_seconds(settings: Settings, method: str, hyperparameters: dict, num_rows: int, gpu_type: str) -> float:
    """How long a training job should take, for the estimate held at creation: start-up plus steps
    (``max_steps``, else epochs over the dataset) at a per-step time for the device and method."""
    from tuneyard.training.spec import default_hyperparameters  # light: no torch

    hp = {**default_hyperparameters(method), **{k: v for k, v in hyperparameters.items() if v is not None}}
    steps = hp.get("max_steps")
    if not steps or steps < 0:
        per_step = max(1, int(hp["batch_size"]) * int(hp.get("gradient_accumulation_steps") or 1))
        if method == "grpo":  # a GRPO batch counts completions: num_generations per prompt
            per_step = max(1, per_step // max(1, int(hp["num_generations"])))
        steps = max(1, -(-int(float(hp["num_epochs"]) * num_rows) // per_step))
    step_s = settings.estimate_cpu_step_seconds if gpu_type == "cpu" else settings.estimate_gpu_step_seconds
    return settings.estimate_startup_seconds + steps * step_s * METHOD_STEP_FACTOR.get(method, 1.0)
