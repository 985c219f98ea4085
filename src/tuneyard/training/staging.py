"""A runner away from tuneyard (a Ray node, an SSH host) gets its inputs and hands over its checkpoints
through blob storage: the spec names them by URL instead of local path.

* inputs (``dataset_path``, reward ``path``, ``resume_from``) may be ``s3://``, ``file://`` or
  ``http(s)://`` URLs (a ``resume_from`` URL ending in ``/`` is a folder): they are fetched into the
  runner's work folder before anything else happens;
* with ``output_url`` set, every checkpoint the runner reports is first uploaded to
  ``<output_url>/<label>/`` (the model files, not the optimizer state) and the report says so.

S3 credentials come from boto3's usual chain; ``AWS_ENDPOINT_URL`` names a non-AWS store. Kept light
(no torch) and free of tuneyard.store: the scheduler imports the file rules from here too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEMES = ("s3", "file", "http", "https")
# Files of a checkpoint folder not worth keeping in blob storage (optimizer state stays with the run).
_SKIP_SUFFIXES = (".pt", ".pth", ".bin.index.json")
_SKIP_NAMES = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"}


def is_url(value: str | None) -> bool:
    return bool(value) and urlparse(str(value)).scheme in SCHEMES


def checkpoint_label(step: int, final: bool) -> str:
    return "final" if final else f"step-{step}"


def model_files(local_dir: Path) -> list[Path]:
    """The files of a checkpoint folder that are published (sorted, relative paths)."""
    out = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        if path.name in _SKIP_NAMES or path.name.endswith(_SKIP_SUFFIXES) or path.name.startswith("rng_state"):
            continue
        out.append(path.relative_to(local_dir))
    return out


def _s3():
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint or None,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "auto"}))


def _bucket_key(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.netloc, unquote(parsed.path.lstrip("/"))


def fetch(url: str, dest: Path) -> Path:
    """Copy the object (or, for a URL ending in ``/``, every object under it) at ``url`` to ``dest``."""
    scheme = urlparse(url).scheme
    folder = url.endswith("/")
    if folder:
        dest.mkdir(parents=True, exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
    if scheme == "file":
        src = Path(unquote(urlparse(url).path))
        if folder:
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dest)
    elif scheme == "s3":
        client = _s3()
        bucket, key = _bucket_key(url)
        if folder:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                for obj in page.get("Contents", []):
                    target = dest / obj["Key"][len(key):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(bucket, obj["Key"], str(target))
        else:
            client.download_file(bucket, key, str(dest))
    elif scheme in ("http", "https") and not folder:
        import httpx

        with httpx.stream("GET", url, timeout=60, follow_redirects=True) as r, open(dest, "wb") as out:
            r.raise_for_status()
            for chunk in r.iter_bytes(1 << 20):
                out.write(chunk)
    else:
        raise ValueError(f"cannot fetch {url}")
    return dest


def publish(local_dir: Path, url: str) -> list[dict]:
    """Upload a checkpoint folder's model files under ``url``; returns ``[{path, bytes}]``."""
    scheme = urlparse(url).scheme
    base = url.rstrip("/")
    files = []
    client = _s3() if scheme == "s3" else None
    for rel in model_files(local_dir):
        src = local_dir / rel
        if scheme == "s3":
            bucket, key = _bucket_key(f"{base}/{rel.as_posix()}")
            client.upload_file(str(src), bucket, key)  # multipart for large files, by boto3
        elif scheme == "file":
            target = Path(unquote(urlparse(base).path)) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        else:
            raise ValueError(f"cannot publish checkpoints to {url} (use s3:// or file://)")
        files.append({"path": rel.as_posix(), "bytes": src.stat().st_size})
    return files


def localize(spec, workdir: Path):
    """Fetch the spec's URL inputs into ``workdir`` and point the spec at the local copies; a relative
    ``output_dir`` lands in ``workdir`` too. Returns the same (mutated) spec."""
    workdir.mkdir(parents=True, exist_ok=True)
    if is_url(spec.dataset_path):
        spec.dataset_path = str(fetch(spec.dataset_path, workdir / "train.jsonl"))
    for i, rf in enumerate(spec.reward_functions):
        if is_url(rf.path):
            name = Path(urlparse(rf.path).path).name or f"reward_{i}.py"
            rf.path = str(fetch(rf.path, workdir / "rewards" / name))
    if is_url(spec.resume_from):
        spec.resume_from = str(fetch(spec.resume_from if spec.resume_from.endswith("/") else spec.resume_from + "/",
                                     workdir / "resume"))
    if not Path(spec.output_dir).is_absolute():
        spec.output_dir = str(workdir / spec.output_dir)
    return spec


def uploader(output_url: str):
    """An emitter hook: publish each reported checkpoint, then report where it went."""

    def on_checkpoint(event: dict) -> dict:
        label = checkpoint_label(int(event.get("step") or 0), bool(event.get("final")))
        files = publish(Path(event["path"]), f"{output_url.rstrip('/')}/{label}")
        return {**event, "uploaded": True, "label": label, "files": files}

    return on_checkpoint
