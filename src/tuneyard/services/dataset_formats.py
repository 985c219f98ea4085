"""What a dataset row may look like, and which training methods each format feeds.

Formats (names as the veri CLI uses them): ``chat`` (``messages``), ``completion``
(``prompt``/``completion``), ``preference`` (``prompt``/``chosen``/``rejected``), ``prompt``
(``prompt`` plus any extra columns, e.g. ``answer``, which reach reward functions as kwargs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

ROLES = {"system", "user", "assistant", "tool", "developer"}
METHODS_FOR_FORMAT = {"chat": {"sft"}, "completion": {"sft"}, "preference": {"dpo"}, "prompt": {"grpo"}}
PREVIEW_ROWS = 5


class RowError(ValueError):
    """A row that does not fit; the message says what is wrong (without the line number)."""


def _check_messages(messages: Any, column: str) -> None:
    if not isinstance(messages, list):
        raise RowError(f"'{column}' must be a list of {{role, content}} messages")
    nonempty = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise RowError(f"'{column}[{i}]' must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise RowError(f"'{column}[{i}].role' is {m['role']!r}; expected one of {sorted(ROLES)}")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise RowError(f"'{column}[{i}].content' must be a string")
        if (isinstance(content, str) and content.strip()) or (isinstance(content, list) and content) \
                or m.get("tool_calls"):
            nonempty += 1
    if column == "messages" and nonempty < 2:
        raise RowError("'messages' needs at least 2 non-empty messages")


def _check_text_or_messages(row: dict, column: str) -> None:
    value = row.get(column)
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f"'{column}' is empty")
    elif isinstance(value, list):
        _check_messages(value, column)
    else:
        raise RowError(f"'{column}' must be a string or a list of messages")


def row_format(row: Any) -> str:
    """The format of one row, or RowError saying why it has none."""
    if not isinstance(row, dict):
        raise RowError(f"each line must be a JSON object, got {type(row).__name__}")
    if "messages" in row:
        _check_messages(row["messages"], "messages")
        return "chat"
    if "chosen" in row or "rejected" in row:
        for column in ("chosen", "rejected"):
            if column not in row:
                raise RowError(f"preference rows need both 'chosen' and 'rejected' (missing '{column}')")
            _check_text_or_messages(row, column)
        if "prompt" in row:
            _check_text_or_messages(row, "prompt")
        return "preference"
    if "prompt" in row:
        _check_text_or_messages(row, "prompt")
        if "completion" in row:
            _check_text_or_messages(row, "completion")
            return "completion"
        return "prompt"
    keys = ", ".join(sorted(row)) or "none"
    raise RowError(f"row has none of 'messages', 'prompt', or 'chosen'/'rejected' (keys: {keys})")


@dataclass
class Summary:
    format: str | None = None
    num_rows: int = 0
    columns: list[str] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)


class DatasetError(ValueError):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


def check_rows(rows: Iterable[tuple[int, Any]]) -> Summary:
    """Check every (line number, row); raise DatasetError at the first bad one."""
    summary = Summary()
    seen_ids: set = set()
    columns: dict[str, None] = {}
    for line, row in rows:
        try:
            fmt = row_format(row)
        except RowError as exc:
            raise DatasetError(str(exc), line) from None
        if summary.format is None:
            summary.format = fmt
        elif fmt != summary.format:
            raise DatasetError(f"this is a '{fmt}' row but the dataset's first row is '{summary.format}'", line)
        if "id" in row:
            rid = json.dumps(row["id"], sort_keys=True)
            if rid in seen_ids:
                raise DatasetError(f"duplicate id {row['id']!r}", line)
            seen_ids.add(rid)
        columns.update(dict.fromkeys(row))
        summary.num_rows += 1
        if len(summary.preview) < PREVIEW_ROWS:
            summary.preview.append(row)
    if summary.num_rows == 0:
        raise DatasetError("dataset has no rows")
    summary.columns = list(columns)
    return summary


def parse_jsonl_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line; DatasetError for bad JSON."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            yield number, json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})", number) from None


def check_method(fmt: str, method: str) -> str | None:
    """None when a dataset of ``fmt`` can train ``method``; else the reason."""
    allowed = METHODS_FOR_FORMAT.get(fmt, set())
    if method in allowed:
        return None
    fits = sorted(m for m, in_ in ((m, m in METHODS_FOR_FORMAT.get(fmt, ())) for m in ("sft", "dpo", "grpo")) if in_)
    needs = {"sft": "'chat' (messages) or 'completion' (prompt/completion)",
             "dpo": "'preference' (prompt/chosen/rejected)", "grpo": "'prompt'"}[method]
    return f"method '{method}' needs a {needs} dataset; this dataset is '{fmt}' (fits: {', '.join(fits) or 'none'})"
