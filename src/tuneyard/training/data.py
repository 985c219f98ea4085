"""Load a job's dataset file and check that its rows fit the declared format.

We read JSONL ourselves instead of ``datasets.load_dataset("json")``: that writes a shared cache
under ``~/.cache/huggingface`` (racy across concurrent jobs) and reports malformed lines poorly.
Rows are checked here so a bad upload fails with the line number, not deep inside a trainer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .events import JobFailure

# Columns each format requires; values may be strings or lists of chat messages.
REQUIRED = {
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "preference": ("prompt", "chosen", "rejected"),
    "prompt": ("prompt",),
}


def _fail(message: str) -> JobFailure:
    return JobFailure("dataset_error", message)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise _fail(f"dataset file not found: {path}")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of rows
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise _fail(f"dataset is not valid JSON: {exc}") from exc
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise _fail(f"dataset line {lineno} is not valid JSON: {exc.msg}") from exc
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise _fail(f"dataset row {i} is not a JSON object")
    if not rows:
        raise _fail("dataset is empty")
    return rows


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    )


def check_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    required = REQUIRED[fmt]
    first_kind: dict[str, str] = {}
    for i, row in enumerate(rows, 1):
        for col in required:
            value = row.get(col)
            if col == "messages":
                ok = _is_messages(value)
            else:
                ok = (isinstance(value, str) and value != "") or _is_messages(value)
            if not ok:
                kind = "a list of {role, content} messages" if col == "messages" else "a string or messages"
                raise _fail(f"dataset row {i}: {col!r} must be {kind} (format {fmt!r})")
            kind = "text" if isinstance(value, str) else "messages"
            if first_kind.setdefault(col, kind) != kind:
                raise _fail(
                    f"dataset row {i}: {col!r} is {kind} but earlier rows use {first_kind[col]}; "
                    "use one style for the whole file"
                )


def _normalize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row the same keys so Arrow can build one schema."""
    keys: list[str] = []
    for row in rows:
        for k in row:
            if k not in keys:
                keys.append(k)
    return [{k: row.get(k) for k in keys} for row in rows]


def load_dataset(path: str | Path, fmt: str):
    """A ``datasets.Dataset`` ready for the TRL trainer that goes with ``fmt``."""
    from datasets import Dataset

    rows = read_rows(path)
    check_rows(rows, fmt)
    if fmt == "messages":
        # SFT on messages only needs the conversation; extra columns can confuse the collator.
        rows = [{"messages": r["messages"]} for r in rows]
    elif fmt == "prompt_completion":
        rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    elif fmt == "preference":
        rows = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    try:
        return Dataset.from_list(_normalize(rows))
    except Exception as exc:  # pyarrow type clashes between rows: report as a dataset problem
        raise _fail(f"dataset columns have inconsistent types across rows: {exc}") from exc
