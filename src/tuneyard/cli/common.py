"""What the user-facing commands share: the client, output (tables or ``--json``) and error handling.

Errors from the API print one line on stderr and exit non-zero, never a traceback:
1 = the request was refused (or a local user error), 3 = the server could not be reached,
4 = authentication failed, 130 = interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tuneyard.client import Client, errors

# A pipe or a file gets long lines (no wrapping at 80 columns); a terminal gets its own width.
_PIPE_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
console = Console(highlight=False, width=_PIPE_WIDTH)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else _PIPE_WIDTH or 160)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON (the server's objects) instead of tables.")
F = TypeVar("F", bound=Callable[..., Any])


class _State:
    """Global ``--url`` / ``--api-key`` options (set by the app callback in main.py)."""

    url: str | None = None
    api_key: str | None = None


state = _State()


def get_client(**kwargs: Any) -> Client:
    return Client(state.url, state.api_key, **kwargs)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {_escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def describe(exc: errors.TuneyardError) -> tuple[str, int]:
    """The one line (and exit code) shown for a client error."""
    if isinstance(exc, errors.Unauthorized):
        return f"{exc.message} (run `tuneyard login` with a valid key)", 4
    if isinstance(exc, errors.ConnectionFailed):
        return exc.message, 3
    if isinstance(exc, errors.APIError):
        text = exc.message
        if exc.code and exc.code not in text:
            text += f" (code: {exc.code})"
        return text, 1
    return exc.message, 1


def api_command(fn: F) -> F:
    """Run a command, turning client errors and Ctrl-C into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.TuneyardError as exc:
            message, code = describe(exc)
            fail(message, code)
        except ValueError as exc:  # e.g. an unreadable config file
            fail(str(exc))
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def short_time(value: Any) -> str:
    """``2026-11-23T11:52:23.421Z`` → ``2026-11-23 11:52:23`` (tables only; JSON keeps the original)."""
    if isinstance(value, str) and len(value) >= 19 and value[10] == "T":
        return value[:10] + " " + value[11:19]
    return fmt(value)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def money(value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    return f"${v:,.4f}" if abs(v) < 1 else f"${v:,.2f}"


def print_table(rows: Iterable[dict], columns: list[tuple[str, str]], *, title: str | None = None,
                empty: str = "nothing here yet", out: Console | None = None) -> None:
    """``columns`` = [(key, header)]; values go through :func:`fmt`."""
    out = out or console
    rows = list(rows)
    if not rows:
        out.print(f"[dim]{empty}[/dim]")
        return
    table = Table(title=title, show_edge=False, header_style="bold")
    for key, header in columns:
        is_id = key == "id" or key.endswith("_id") or key == "reference"
        table.add_column(header, overflow="fold", no_wrap=is_id)
    for row in rows:
        table.add_row(*[_escape(short_time(row.get(key)) if key.endswith("_at") else fmt(row.get(key)))
                        for key, _ in columns])
    out.print(table)


def print_fields(obj: Any, keys: list[str] | None = None, *, title: str | None = None) -> None:
    """A two-column view of an object (the named keys, or every top-level key)."""
    data = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    table = Table(show_header=False, show_edge=False, box=None, title=title, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key in keys or list(data):
        if key in data and key != "object":
            table.add_row(key, _escape(fmt(data[key])))
    console.print(table)


def print_page(page: Any, columns: list[tuple[str, str]], json_out: bool, *, empty: str = "nothing here yet",
               what: str = "items") -> None:
    if json_out:
        print_json(page.to_dict())
        return
    print_table([item.to_dict() for item in page], columns, empty=empty)
    if page.has_more:
        console.print(f"[dim]more {what}: --after {page.next_cursor}[/dim]")


def parse_kv(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` options; values are parsed as JSON when they can be (numbers, true, lists)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"{what} must look like key=value, got {pair!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out
