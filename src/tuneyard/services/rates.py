"""The GPU rate catalog: what an hour of each GPU costs at each provider, and on this cluster.

Prices are data, not code: ``data/gpu_rates.json`` ships a dated snapshot of the providers' list
prices (every row names its source page and date), ``TUNEYARD_RATES_FILE`` replaces it, and
``TUNEYARD_LOCAL_RATES`` prices this cluster's own hardware. GPU names go through
``cluster.canonical_gpu_type`` so ``h100``, ``H100`` and ``H100-80GB`` are one GPU everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tuneyard.errors import InvalidRequest
from tuneyard.services import cluster
from tuneyard.settings import Settings

LOCAL = "local"


@dataclass(frozen=True)
class Rate:
    provider: str
    gpu_type: str
    usd_per_hour: Decimal  # one GPU (or one CPU job slot) for one hour, on demand
    spot_usd_per_hour: Decimal | None
    source: str
    as_of: str
    instance: str | None = None

    def as_json(self) -> dict:
        return {"provider": self.provider, "gpu_type": self.gpu_type, "usd_per_hour": float(self.usd_per_hour),
                "spot_usd_per_hour": float(self.spot_usd_per_hour) if self.spot_usd_per_hour is not None else None,
                "instance": self.instance, "source": self.source, "as_of": self.as_of}


@lru_cache(maxsize=4)
def _load(path: str | None) -> dict:
    if path:
        return json.loads(Path(path).read_text())
    return json.loads(resources.files("tuneyard").joinpath("data/gpu_rates.json").read_text())


def _catalog(settings: Settings) -> dict:
    return _load(str(settings.rates_file) if settings.rates_file else None)


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def provider_rates(settings: Settings) -> list[Rate]:
    """The external providers' rows (not this cluster's); rows priced 0 or null are 'not offered'."""
    out = []
    for row in _catalog(settings)["rates"]:
        if not row.get("usd_per_hour"):
            continue
        out.append(Rate(row["provider"], cluster.canonical_gpu_type(row["gpu_type"]), _dec(row["usd_per_hour"]),
                        _dec(row.get("spot_usd_per_hour")) or None, row["source"], row["as_of"], row.get("instance")))
    return out


def local_rate(settings: Settings, gpu_type: str) -> Rate:
    """This cluster's price for one unit of ``gpu_type``: settings first, then the catalog's defaults."""
    local = _catalog(settings).get("local", {})
    table = {cluster.canonical_gpu_type(k): v for k, v in local.get("usd_per_hour", {}).items()}
    overrides = {cluster.canonical_gpu_type(k): v for k, v in settings.local_rates.items()}
    gpu_type = cluster.canonical_gpu_type(gpu_type)
    if gpu_type in overrides:
        return Rate(LOCAL, gpu_type, _dec(overrides[gpu_type]), None, "TUNEYARD_LOCAL_RATES", "configured",
                    "this cluster")
    price = table.get(gpu_type, overrides.get("*", table.get("*", 1.0)))
    return Rate(LOCAL, gpu_type, _dec(price), None, local.get("source", "tuneyard default"),
                local.get("as_of", ""), "this cluster")


def all_rates(settings: Settings) -> list[Rate]:
    """Every provider's offers plus this cluster's hardware (the types it really has)."""
    local = [local_rate(settings, t) for t in cluster.local_inventory()]
    return sorted(provider_rates(settings) + local, key=lambda r: (r.gpu_type, r.usd_per_hour, r.provider))


def updated_at(settings: Settings) -> str:
    return _catalog(settings).get("updated_at", "")


def known_gpu_types(settings: Settings) -> list[str]:
    return sorted({r.gpu_type for r in all_rates(settings)})


def offers(settings: Settings, gpu_type: str) -> list[Rate]:
    """Every provider that offers ``gpu_type``, cheapest first; 400 for a GPU nobody offers."""
    canonical = cluster.canonical_gpu_type(gpu_type)
    rows = [r for r in all_rates(settings) if r.gpu_type == canonical]
    if not rows:
        raise InvalidRequest(f"Unknown GPU type {gpu_type!r}. Known: {', '.join(known_gpu_types(settings))}",
                             param="gpu_type", code="invalid_gpu_type")
    return sorted(rows, key=lambda r: (r.usd_per_hour, r.provider))


def lookup(settings: Settings, provider: str, gpu_type: str) -> Rate:
    """The rate of one provider for one GPU; 400 when that provider does not offer it."""
    provider = provider.strip().lower()
    rows = offers(settings, gpu_type)
    for r in rows:
        if r.provider == provider:
            return r
    offered = ", ".join(r.provider for r in rows)
    raise InvalidRequest(f"Provider {provider!r} does not offer {rows[0].gpu_type}. Offered by: {offered}",
                         param="provider", code="invalid_provider")


def _offer(settings: Settings, provider: str, gpu_type: str) -> Rate | None:
    canonical = cluster.canonical_gpu_type(gpu_type)
    if provider == LOCAL:
        return local_rate(settings, canonical) if canonical in cluster.local_inventory() else None
    return next((r for r in provider_rates(settings) if r.provider == provider and r.gpu_type == canonical), None)


def job_rate(settings: Settings, provider: str, gpu_type: str) -> Rate:
    """The rate metering charges for work on ``provider``. Local hardware is always priced; work on a
    provider whose row has since left the catalog is charged at the local price rather than failing
    the job's bookkeeping."""
    return _offer(settings, provider, gpu_type) or local_rate(settings, gpu_type)


def choose_provider(settings: Settings, gpu_type: str, requested: str | None) -> str:
    """Where a job or deployment runs: the requested provider if this cluster reaches it, else the
    cheapest provider this cluster runs work on that has a rate for the GPU."""
    runnable = [p.strip().lower() for p in settings.compute_providers if p.strip()] or [LOCAL]
    if requested:
        provider = requested.strip().lower()
        if provider not in runnable:
            raise InvalidRequest(f"Provider {requested!r} is not configured on this cluster. "
                                 f"Available: {', '.join(runnable)}", param="provider", code="invalid_provider")
        return provider
    priced = [(rate.usd_per_hour, p) for p in runnable if (rate := _offer(settings, p, gpu_type)) is not None]
    if not priced:
        raise InvalidRequest(f"No provider of this cluster ({', '.join(runnable)}) offers {gpu_type}",
                             param="gpu.type", code="invalid_gpu_type")
    return min(priced)[1]
