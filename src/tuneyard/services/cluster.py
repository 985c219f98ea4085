"""What hardware this cluster has, and how requested GPU shapes map onto it.

Read without importing torch (``nvidia-smi -L``), so the API process stays light. On a machine
with no GPU, jobs run on the CPU: the only shape is ``{"type": "cpu", "count": 1}``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from tuneyard.errors import InvalidRequest

# Client spellings -> canonical names (the veri spec sheet uses the memory-suffixed names).
GPU_ALIASES = {
    "A10G": "A10G-24GB", "L4": "L4-24GB", "L40S": "L40S-48GB", "A100": "A100-80GB", "A100-40G": "A100-40GB",
    "A100-80G": "A100-80GB", "H100": "H100-80GB", "H200": "H200-141GB", "MI300X": "MI300X-192GB",
    "CPU": "cpu", "A10G24GB": "A10G-24GB", "L424GB": "L4-24GB", "L40S48GB": "L40S-48GB", "A10040GB": "A100-40GB",
    "A10080GB": "A100-80GB", "A100-SXM4-80GB": "A100-80GB", "A100-SXM4-40GB": "A100-40GB", "H10080GB": "H100-80GB",
    "H100-SXM": "H100-80GB", "H100-PCIE": "H100-80GB", "H100-SXM5": "H100-80GB", "H200141GB": "H200-141GB",
    "MI300X192GB": "MI300X-192GB",
}
_SMI_NAMES = [("H200", "H200-141GB"), ("H100", "H100-80GB"), ("A100-SXM4-40GB", "A100-40GB"),
              ("A100-PCIE-40GB", "A100-40GB"), ("A100", "A100-80GB"), ("L40S", "L40S-48GB"),
              ("A10G", "A10G-24GB"), ("L4", "L4-24GB")]


@dataclass(frozen=True)
class GpuShape:
    type: str
    count: int

    def as_json(self) -> dict:
        return {"type": self.type, "count": self.count}


def canonical_gpu_type(name: str) -> str:
    """The one spelling of a GPU type: case-insensitive, ``_``/space as ``-`` (``h100`` -> ``H100-80GB``)."""
    upper = "-".join(name.strip().upper().replace("_", " ").split())
    if upper in GPU_ALIASES:
        return GPU_ALIASES[upper]
    for canonical in set(GPU_ALIASES.values()):
        if canonical.upper() == upper:
            return canonical
    return name.strip()


@lru_cache
def local_inventory() -> dict[str, int]:
    """GPU type -> count on this machine; ``{"cpu": 1}`` when there is none."""
    counts: Counter[str] = Counter()
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            m = re.match(r"GPU \d+: (.+?) \(", line)
            if m:
                name = m.group(1)
                counts[next((c for k, c in _SMI_NAMES if k in name), name)] += 1
    return dict(counts) if counts else {"cpu": 1}


def available_shapes() -> list[dict]:
    return [{"type": t, "count": n} for t, n in local_inventory().items()]


def resolve_shape(requested: dict | None, inventory: dict[str, int] | None = None) -> GpuShape:
    """The shape a job or deployment gets. Accepts {type,count} and {gpu_type,gpu_count}.
    ``inventory``: the hardware to check against (services.compute), this machine's by default."""
    inventory = inventory if inventory is not None else local_inventory()
    if not requested:
        gpu_type = next(iter(inventory))
        return GpuShape(gpu_type, 1)
    raw_type = requested.get("type") or requested.get("gpu_type")
    raw_count = requested.get("count", requested.get("gpu_count", 1))
    if not isinstance(raw_count, int) or isinstance(raw_count, bool) or raw_count < 1:
        raise InvalidRequest("gpu count must be a positive whole number", param="gpu.count")
    if not raw_type:
        return GpuShape(next(iter(inventory)), raw_count if "cpu" not in inventory else 1)
    gpu_type = canonical_gpu_type(str(raw_type))
    shapes = ", ".join(f"{t} x{n}" for t, n in inventory.items())
    if gpu_type not in inventory:
        raise InvalidRequest(f"GPU type {raw_type!r} is not available on this cluster. Available: {shapes}",
                             param="gpu.type", code="invalid_gpu_type")
    if gpu_type != "cpu" and raw_count > inventory[gpu_type]:
        raise InvalidRequest(f"{raw_count} x {gpu_type} requested but this cluster has {inventory[gpu_type]}. "
                             f"Available: {shapes}", param="gpu.count", code="insufficient_capacity")
    return GpuShape(gpu_type, 1 if gpu_type == "cpu" else raw_count)


def capacity(gpu_type: str) -> int:
    """How many jobs of one unit may run at once on ``gpu_type`` (one CPU job at a time)."""
    return local_inventory().get(gpu_type, 0)
