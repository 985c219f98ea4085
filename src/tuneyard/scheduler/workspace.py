"""A job's working folder and the self-contained spec the runner reads.

For a runner on this machine everything it needs is copied in (dataset, reward files) and the
relay uploads its checkpoints. For a runner elsewhere (``remote=True``: a Ray node, an SSH host) the
spec names the inputs by blob URL and gives an ``output_url``: the runner fetches and publishes
itself (training/staging.py). Either way it never touches the database.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.context import Context
from tuneyard.store.models import Checkpoint, Dataset, RewardFunction, TrainingJob
from tuneyard.training.staging import model_files


def job_dir(ctx: Context, job_id: str) -> Path:
    return ctx.settings.data_dir / "jobs" / job_id


def prepare(ctx: Context, session: Session, job: TrainingJob, *, remote: bool = False) -> tuple[Path, Path]:
    """Create ``jobs/<id>/attempt-<n>/`` with ``spec.json`` (and, unless ``remote``, the inputs);
    returns (workdir, spec)."""
    workdir = job_dir(ctx, job.id) / f"attempt-{job.attempt}"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)

    def stage(key: str, dest: Path) -> str:
        if remote:
            return ctx.blobs.url(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy_blob(ctx, key, dest)
        return str(dest)

    ds = _by_id(session, Dataset, job.dataset_id)
    dataset = stage(ds.blob_key, workdir / "train.jsonl")
    reward_specs = []
    weights = job.reward_weights or [1.0] * len(job.reward_function_ids)
    for rf_id, weight in zip(job.reward_function_ids, weights):
        rf = _by_id(session, RewardFunction, rf_id)
        path = stage(rf.blob_key, workdir / "rewards" / f"{rf.id}.py")
        reward_specs.append({"path": path, "format": rf.format, "weight": float(weight), "name": rf.name,
                             "entrypoint": rf.entrypoint})
    resume_from = None
    if job.resume_from:
        ckpt = _by_id(session, Checkpoint, job.resume_from)
        if not remote and ckpt.local_path and Path(ckpt.local_path).is_dir():
            resume_from = ckpt.local_path  # the full Trainer state: resumes at its step
        else:  # the published model files: training continues from those weights
            resume_from = ctx.blobs.url(ckpt.blob_prefix) + "/"
    spec = {
        "job_id": job.id, "method": job.method, "base_model": job.base_model,
        "dataset_path": dataset, "dataset_format": _runner_format(ds.format),
        "reward_functions": reward_specs, "hyperparameters": job.hyperparameters,
        "output_dir": "out" if remote else str(workdir / "out"), "resume_from": resume_from,
        "device": "cpu" if job.gpu_type == "cpu" else "cuda",
        "reward_timeout_seconds": ctx.settings.reward_timeout_seconds,
    }
    if remote:
        spec["output_url"] = ctx.blobs.url(checkpoints_prefix(job))
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


def checkpoints_prefix(job: TrainingJob) -> str:
    return f"orgs/{job.org_id}/jobs/{job.id}/checkpoints"


def upload_checkpoint(ctx: Context, job: TrainingJob, local_dir: Path, label: str) -> tuple[str, list[dict]]:
    """Copy a checkpoint's model files (not the optimizer state) to blob storage; returns
    (prefix, [{path, bytes}])."""
    prefix = f"{checkpoints_prefix(job)}/{label}"
    files = []
    for rel in model_files(local_dir):
        ctx.blobs.put_file(f"{prefix}/{rel.as_posix()}", local_dir / rel)
        files.append({"path": rel.as_posix(), "bytes": (local_dir / rel).stat().st_size})
    return prefix, files


def runner_env(ctx: Context) -> dict[str, str]:
    """Environment a remote runner needs to reach blob storage: the S3 endpoint and, unless the nodes
    have their own (TUNEYARD_FORWARD_STORAGE_CREDENTIALS=false), this process's credentials."""
    settings = ctx.settings
    if not settings.storage_url.startswith("s3://"):
        return {}
    env = {}
    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    if settings.forward_storage_credentials:
        import boto3

        session = boto3.session.Session()
        creds = session.get_credentials()
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            env.update(AWS_ACCESS_KEY_ID=frozen.access_key, AWS_SECRET_ACCESS_KEY=frozen.secret_key)
            if frozen.token:
                env["AWS_SESSION_TOKEN"] = frozen.token
        env["AWS_DEFAULT_REGION"] = session.region_name or "us-east-1"
    return env
