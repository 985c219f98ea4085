"""The GPU preference Synth clients send, and where work asking for it really runs.

A preference arrives as the ``X-GPU-Preference`` header, a ``?gpu=`` query parameter, or (from
``synth-ai``'s ``LM(gpu_preference=…)``) the body fields ``gpu_preference`` and
``extra_headers["X-GPU-Preference"]``; the first one given wins in that order.

It is a *preference*: a GPU type this installation knows (the rate catalog: ``A10G``, ``L40S``,
``A100``, ``H100``, ``H200`` … in any of their spellings) is honoured when this cluster has it, and
otherwise the work runs on the hardware the cluster does have (the response says which). A name
that is no GPU type at all is a 400 naming the supported ones.
"""

from __future__ import annotations

from typing import Any

from tuneyard.errors import InvalidRequest
from tuneyard.services import cluster, rates
from tuneyard.settings import Settings

HEADER = "X-GPU-Preference"
ANY = {"", "auto", "any", "default", "none"}


def from_request(header: str | None, query: str | None, body: dict[str, Any] | None) -> str | None:
    """The raw preference, from the first place that names one."""
    body = body or {}
    extra = body.get("extra_headers") if isinstance(body.get("extra_headers"), dict) else {}
    from_extra = next((v for k, v in extra.items() if k.lower() == HEADER.lower()), None)
    for value in (header, query, body.get("gpu_preference"), from_extra):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def supported(settings: Settings) -> list[str]:
    """Short names clients use (``A100``), then the canonical ones, for error messages and /models."""
    canonical = set(rates.known_gpu_types(settings)) | set(cluster.local_inventory())
    short = sorted(k for k, v in cluster.GPU_ALIASES.items() if v in canonical and k.isalnum() and k[-1:] != "B"
                   and k != "CPU")
    return short + sorted(canonical)


def placement(settings: Settings, preference: str | None, param: str = "gpu") -> dict[str, Any]:
    """``{"preferred", "type", "count", "honoured"}``: where work with this preference runs here."""
    inventory = cluster.local_inventory()
    fallback = next(iter(inventory))
    if preference is None or preference.strip().lower() in ANY:
        return {"preferred": None, "type": fallback, "count": 1, "honoured": True}
    canonical = cluster.canonical_gpu_type(preference)
    if canonical not in set(rates.known_gpu_types(settings)) | set(inventory):
        raise InvalidRequest(f"Unsupported GPU {preference!r}. Supported GPU types: {', '.join(supported(settings))} "
                             f"(this cluster has: {', '.join(f'{t} x{n}' for t, n in inventory.items())})",
                             param=param, code="unsupported_gpu")
    if canonical in inventory:
        return {"preferred": canonical, "type": canonical, "count": 1, "honoured": True}
    return {"preferred": canonical, "type": fallback, "count": 1, "honoured": False}
