"""The hardware the configured executor runs jobs on, as ``{gpu type: units}``.

The API validates requested GPU shapes against it and the scheduler counts capacity with it: this
machine's GPUs for the local executor, the alive nodes of the Ray cluster (the numbers
``ray.cluster_resources()`` reports, read from the dashboard's state API without joining the cluster),
or the configured SSH hosts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from tuneyard.services.cluster import canonical_gpu_type, local_inventory
from tuneyard.settings import Settings

log = logging.getLogger("tuneyard.compute")
RAY_TTL_SECONDS = 10.0
_ray_cache: dict[str, tuple[float, dict[str, int], dict[str, str]]] = {}
_lock = threading.Lock()


def inventory(settings: Settings) -> dict[str, int] | None:
    """None while a Ray cluster has never answered (then this machine's hardware stands in)."""
    if settings.executor == "ray":
        return ray_inventory(settings)[0] or None
    if settings.executor == "ssh":
        return ssh_inventory(settings)
    return local_inventory()


def ssh_inventory(settings: Settings) -> dict[str, int]:
    total: Counter[str] = Counter()
    for host in settings.ssh_hosts:
        for gpu_type, count in (host.get("gpus") or {"cpu": 1}).items():
            total[canonical_gpu_type(gpu_type)] += int(count)
    return dict(total)


def ray_inventory(settings: Settings) -> tuple[dict[str, int], dict[str, str]]:
    """(GPU type -> GPUs on alive nodes, plus ``cpu`` -> CPU runners that fit; GPU type -> Ray's
    ``accelerator_type`` label). Cached for a few seconds; the last answer while Ray is unreachable."""
    address = settings.ray_address
    with _lock:
        cached = _ray_cache.get(address)
    if cached and time.monotonic() - cached[0] < RAY_TTL_SECONDS:
        return cached[1], cached[2]
    try:
        from ray.util.state import list_nodes

        nodes = list_nodes(address=address, limit=10_000, raise_on_missing_output=False)
    except Exception as exc:
        log.warning("Ray cluster at %s unreachable: %s", address, exc)
        return (cached[1], cached[2]) if cached else ({}, {})
    cpus, gpus, labels = 0.0, Counter(), {}
    for node in nodes:
        if node.state != "ALIVE":
            continue
        res = node.resources_total or {}
        cpus += res.get("CPU", 0.0)
        if res.get("GPU"):
            label = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), None)
            gpu_type = canonical_gpu_type(label) if label else "GPU"
            gpus[gpu_type] += int(res["GPU"])
            if label:
                labels[gpu_type] = label
    found = dict(gpus)
    if cpus >= settings.ray_cpus_per_job:
        found["cpu"] = int(cpus // settings.ray_cpus_per_job)
    with _lock:
        _ray_cache[address] = (time.monotonic(), found, labels)
    return found, labels
