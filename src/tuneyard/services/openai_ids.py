"""OpenAI-style ids over tuneyard's own: one row, two spellings, nothing stored twice.

``file-<hex>`` is the dataset ``ds_<hex>``, ``ftjob-<hex>`` the training job ``job_<hex>``,
``ftevent-<hex>`` the job event ``evt_<hex>``, ``ftckpt-<hex>`` the checkpoint ``ckpt_<hex>``.
Either spelling is accepted wherever an id is read; responses on ``/api`` use the OpenAI one.
"""

from __future__ import annotations

from datetime import datetime

_PAIRS = {"file": ("file-", "ds_"), "job": ("ftjob-", "job_"), "event": ("ftevent-", "evt_"),
          "checkpoint": ("ftckpt-", "ckpt_")}


def to_openai(kind: str, native: str | None) -> str | None:
    if native is None:
        return None
    ours, theirs = _PAIRS[kind][1], _PAIRS[kind][0]
    return theirs + native[len(ours):] if native.startswith(ours) else native


def to_native(kind: str, public: str | None) -> str | None:
    if public is None:
        return None
    theirs, ours = _PAIRS[kind]
    return ours + public[len(theirs):] if public.startswith(theirs) else public


def unix(dt: datetime | None) -> int | None:
    return int(dt.timestamp()) if dt is not None else None
