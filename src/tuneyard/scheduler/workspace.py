"""A job's working folder and the self-contained spec the runner reads.

Everything the runner needs is copied in (dataset, reward files), so it never touches the
database or blob storage: the same spec runs here, on a Ray worker or on a remote host.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.context import Context
from tuneyard.store.models import Checkpoint, Dataset, RewardFunction, TrainingJob


def job_dir(ctx: Context, job_id: str) -> Path:
    return ctx.settings.data_dir / "jobs" / job_id


def prepare(ctx: Context, session: Session, job: TrainingJob) -> tuple[Path, Path]:
    """Create ``jobs/<id>/attempt-<n>/`` with the inputs and ``spec.json``; returns (workdir, spec)."""
    workdir = job_dir(ctx, job.id) / f"attempt-{job.attempt}"
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "rewards").mkdir(parents=True)
    ds = _by_id(session, Dataset, job.dataset_id)
    _copy_blob(ctx, ds.blob_key, workdir / "train.jsonl")
    reward_specs = []
    weights = job.reward_weights or [1.0] * len(job.reward_function_ids)
    for rf_id, weight in zip(job.reward_function_ids, weights):
        rf = _by_id(session, RewardFunction, rf_id)
        path = workdir / "rewards" / f"{rf.id}.py"
        _copy_blob(ctx, rf.blob_key, path)
        reward_specs.append({"path": str(path), "format": rf.format, "weight": float(weight), "name": rf.name,
                             "entrypoint": rf.entrypoint})
    resume_from = None
    if job.resume_from:
        ckpt = _by_id(session, Checkpoint, job.resume_from)
        if ckpt.local_path and Path(ckpt.local_path).is_dir():
            resume_from = ckpt.local_path
    spec = {
        "job_id": job.id, "method": job.method, "base_model": job.base_model,
        "dataset_path": str(workdir / "train.jsonl"), "dataset_format": _runner_format(ds.format),
        "reward_functions": reward_specs, "hyperparameters": job.hyperparameters,
        "output_dir": str(workdir / "out"), "resume_from": resume_from,
        "device": "cpu" if job.gpu_type == "cpu" else "cuda",
        "reward_timeout_seconds": ctx.settings.reward_timeout_seconds,
    }
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    return workdir, spec_path


def _runner_format(fmt: str) -> str:
    return {"chat": "messages", "completion": "prompt_completion"}.get(fmt, fmt)


def _by_id(session: Session, model, public_id: str):
    return session.execute(select(model).where(model.id == public_id)).scalar_one()


def _copy_blob(ctx: Context, key: str, dest: Path) -> None:
    with open(dest, "wb") as out:
        for chunk in ctx.blobs.iter_bytes(key):
            out.write(chunk)


# Files worth keeping from a checkpoint folder in blob storage (the optimizer state stays local).
_SKIP_SUFFIXES = (".pt", ".pth", ".bin.index.json")
_SKIP_NAMES = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"}


def upload_checkpoint(ctx: Context, job: TrainingJob, local_dir: Path, label: str) -> tuple[str, list[dict]]:
    """Copy a checkpoint's model files to blob storage; returns (prefix, [{path, bytes}])."""
    prefix = f"orgs/{job.org_id}/jobs/{job.id}/checkpoints/{label}"
    files = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        if path.name in _SKIP_NAMES or path.name.endswith(_SKIP_SUFFIXES) or path.name.startswith("rng_state"):
            continue
        ctx.blobs.put_file(f"{prefix}/{rel}", path)
        files.append({"path": rel, "bytes": path.stat().st_size})
    return prefix, files
