"""Reward functions: uploaded Python files, checked statically (never imported or run here).

Uploaded reward code runs only inside the job runner process. Here we parse it and find the
function the runner will call: one named ``reward``, else the single top-level function whose
signature fits the format. ``trl``: ``def reward(prompts, completions, **kwargs) -> list[float]``.
``miles``: ``async def reward(args, sample, **kwargs) -> float``.
"""

from __future__ import annotations

import ast

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.errors import Conflict, InvalidRequest, NotFound
from tuneyard.ids import new_id
from tuneyard.services.uploads import clean_name, copy_limited, scratch
from tuneyard.store.blobs import BlobStore
from tuneyard.store.db import after_commit
from tuneyard.store.models import RewardFunction, TrainingJob

FORMATS = ("trl", "miles")
MAX_REWARD_BYTES = 1 << 20


def _fits(fn: ast.FunctionDef | ast.AsyncFunctionDef, fmt: str) -> str | None:
    """None when ``fn`` can be called as a reward of ``fmt``; otherwise why not."""
    is_async = isinstance(fn, ast.AsyncFunctionDef)
    a = fn.args
    positional = [p.arg for p in a.posonlyargs + a.args]
    if fmt == "trl":
        if is_async:
            return f"'{fn.name}' is async; a 'trl' reward must be a plain def (use format 'miles' for async)"
        if len(positional) < 2 and a.vararg is None:
            return f"'{fn.name}' must accept (prompts, completions, **kwargs)"
        if a.kwarg is None:
            return f"'{fn.name}' must accept **kwargs (dataset columns are passed as keyword arguments)"
        return None
    if not is_async:
        return f"'{fn.name}' must be 'async def' for format 'miles'"
    if len(positional) < 2 and a.vararg is None:
        return f"'{fn.name}' must accept (args, sample, **kwargs)"
    if a.kwarg is None:
        return f"'{fn.name}' must accept **kwargs: async def {fn.name}(args, sample, **kwargs)"
    return None


def find_entrypoint(source: str, fmt: str) -> str:
    """The name of the reward function in ``source``; raises InvalidRequest saying what is wrong."""
    if fmt not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}", param="format")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InvalidRequest(f"Reward file does not parse: line {exc.lineno}: {exc.msg}", param="file",
                             code="invalid_reward_function") from exc
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    named = [f for f in functions if f.name == "reward"]
    if named:
        problem = _fits(named[-1], fmt)
        if problem:
            raise InvalidRequest(problem, param="file", code="invalid_reward_function")
        return "reward"
    fitting = [f for f in functions if not f.name.startswith("_") and _fits(f, fmt) is None]
    if len(fitting) == 1:
        return fitting[0].name
    if not fitting:
        expected = ("def reward(prompts, completions, **kwargs)" if fmt == "trl"
                    else "async def reward(args, sample, **kwargs)")
        raise InvalidRequest(f"No reward function found: define {expected}", param="file",
                             code="invalid_reward_function")
    names = ", ".join(f.name for f in fitting)
    raise InvalidRequest(f"Several functions could be the reward ({names}); name the one to use 'reward'",
                         param="file", code="invalid_reward_function")


def create(session: Session, blobs: BlobStore, org_id: str, *, name: str, fmt: str, filename: str | None,
           stream) -> RewardFunction:
    fmt = (fmt or "trl").lower()
    with scratch(blobs) as tmp:
        received = copy_limited(stream, tmp / "reward.py", MAX_REWARD_BYTES)
        try:
            source = received.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("Reward file must be UTF-8 Python source", param="file",
                                 code="invalid_reward_function") from exc
        entrypoint = find_entrypoint(source, fmt)
        rf_id = new_id("reward_function")
        key = f"orgs/{org_id}/reward_functions/{rf_id}.py"
        blobs.put_file(key, received.path)
    rf = RewardFunction(id=rf_id, org_id=org_id, name=clean_name(name, filename or "reward"), format=fmt,
                        entrypoint=entrypoint, filename=(filename or "")[:300] or None, bytes=received.size,
                        sha256=received.sha256, blob_key=key)
    session.add(rf)
    try:
        session.flush()
    except Exception:
        blobs.delete(key)
        raise
    return rf


def create_from_source(session: Session, blobs: BlobStore, org_id: str, *, name: str, source: str,
                       fmt: str = "trl", param: str = "reward_source") -> RewardFunction:
    """A reward function sent inline as source text (veri-sdk 0.2.34+ ``reward_source``)."""
    import io

    try:
        return create(session, blobs, org_id, name=name, fmt=fmt, filename=None,
                      stream=io.BytesIO(source.encode("utf-8")))
    except InvalidRequest as exc:
        exc.param = param
        raise


def get(session: Session, org_id: str, rf_id: str) -> RewardFunction:
    rf = session.execute(
        select(RewardFunction).where(RewardFunction.id == rf_id, RewardFunction.org_id == org_id)
    ).scalar()
    if rf is None:
        raise NotFound(f"No reward function {rf_id!r}", param="id")
    return rf


def source(blobs: BlobStore, rf: RewardFunction) -> str:
    return b"".join(blobs.iter_bytes(rf.blob_key)).decode("utf-8")


def delete(session: Session, blobs: BlobStore, org_id: str, rf_id: str) -> RewardFunction:
    rf = get(session, org_id, rf_id)
    active = session.execute(
        select(TrainingJob.id, TrainingJob.reward_function_ids).where(
            TrainingJob.org_id == org_id, TrainingJob.status.in_(("queued", "provisioning", "running")))
    ).all()
    in_use = [job_id for job_id, ids in active if rf_id in (ids or [])]
    if in_use:
        raise Conflict(f"Reward function {rf_id} is used by active job {in_use[0]}", param="id")
    session.delete(rf)
    session.flush()
    after_commit(session, lambda: blobs.delete(rf.blob_key))
    return rf
