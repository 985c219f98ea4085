"""The runner's stdout protocol: one JSON object per line, flushed at once.

Why a private file descriptor: transformers, TRL, rich and C extensions all like to print. At
start-up ``Emitter.take_stdout()`` duplicates fd 1 for the protocol and points fd 1 (and
``sys.stdout``) at stderr, so whatever anyone else prints can never corrupt the JSON stream the
scheduler parses.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any


@dataclass
class CancelState:
    """Set by the signal handler, read by the trainer callback at the end of each step."""

    requested: bool = False
    signal_name: str | None = None


class JobFailure(Exception):
    """A failure with a machine-readable code, reported as the terminal ``failed`` status."""

    def __init__(self, code: str, message: str, *, hard_exit: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        # True when a thread may be stuck (a hung reward): the process must leave with os._exit.
        self.hard_exit = hard_exit


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: report them as null. Tensors/numpy scalars become plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    return str(value)


class Emitter:
    def __init__(self, stream: IO[str] | None = None):
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.RLock()  # re-entrant: the signal handler may emit
        self.terminal_sent = False
        # Called with each checkpoint event before it is written (e.g. to upload it); returns the event.
        self.on_checkpoint = None

    @classmethod
    def take_stdout(cls) -> "Emitter":
        """Reserve the real stdout for the protocol and send everything else to stderr."""
        sys.stdout.flush()
        proto_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return cls(os.fdopen(proto_fd, "w", buffering=1, encoding="utf-8"))

    def emit(self, event: dict[str, Any]) -> None:
        if event.get("type") == "checkpoint" and self.on_checkpoint is not None:
            event = self.on_checkpoint(event)
        line = json.dumps(_clean(event), allow_nan=False, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def log(self, message: str) -> None:
        self.emit({"type": "log", "message": message})

    def terminal(self, status: str, *, final_step: int | None, error: dict | None = None) -> None:
        """The last line of a run; emitted at most once whatever path we leave by."""
        with self._lock:
            if self.terminal_sent:
                return
            self.terminal_sent = True
        self.emit({"type": "status", "status": status, "error": error, "final_step": final_step})
