"""The executor interface: the one seam between the scheduler and where a runner process lives.

Local subprocesses implement it today; Ray and SSH executors implement the same four calls.
A handle is a JSON-able dict stored on the job row, so another scheduler (after a restart or
in another worker process) can re-attach to the same run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

Handle = dict[str, Any]


class Executor(Protocol):
    name: str

    def submit(self, job_id: str, workdir: Path, spec_path: Path, *, gpu_type: str, gpu_count: int) -> Handle:
        """Start the runner for ``spec_path``; return a handle that re-attaches to it."""

    def stream(self, handle: Handle) -> Iterator[dict]:
        """The runner's JSON lines from ``handle['offset']`` on, each with an ``_offset`` to resume
        from; ends after the process has exited with ``{"type": "exit", "code": int}``."""

    def cancel(self, handle: Handle) -> None:
        """Ask the runner to stop gracefully (it saves a checkpoint and reports ``cancelled``)."""

    def alive(self, handle: Handle) -> bool:
        """Whether the run behind ``handle`` is still going (used to recover after a restart)."""
