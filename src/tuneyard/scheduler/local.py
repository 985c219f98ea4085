"""Local executor: one ``python -m tuneyard.training`` subprocess per job on this machine.

The runner's stdout goes to a file in the job's workdir rather than a pipe, so the runner
outlives a server restart and the next scheduler re-attaches by reading on from the offset it
had reached (stored in the handle).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tuneyard.scheduler.executor import Handle

POLL_SECONDS = 0.2
_HOST = socket.gethostname()


class LocalExecutor:
    name = "local"

    def submit(self, job_id: str, workdir: Path, spec_path: Path, *, gpu_type: str, gpu_count: int) -> Handle:
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
        if gpu_type == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        stdout = open(workdir / "runner.jsonl", "ab")
        stderr = open(workdir / "runner.stderr.log", "ab")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "tuneyard.training", str(spec_path)],
                                    stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=workdir,
                                    env=env, start_new_session=True)
        finally:
            stdout.close()
            stderr.close()
        _children[proc.pid] = proc
        return {"pid": proc.pid, "host": _HOST, "workdir": str(workdir), "spec": str(spec_path), "offset": 0}

    def alive(self, handle: Handle) -> bool:
        pid = handle.get("pid")
        if not pid or handle.get("host", _HOST) != _HOST:  # a runner on another host is out of reach
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        # Guard against pid reuse: the process must be our runner for this spec.
        if handle["spec"].encode() not in cmdline:
            return False
        try:
            status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            return False
        if status == "Z":
            _exit_code(handle)  # reap it
            return False
        return True

    def cancel(self, handle: Handle) -> None:
        if self.alive(handle):
            os.kill(handle["pid"], signal.SIGTERM)

    def stream(self, handle: Handle) -> Iterator[dict]:
        path = Path(handle["workdir"]) / "runner.jsonl"
        offset = int(handle.get("offset", 0))
        if handle.get("host", _HOST) != _HOST or not path.exists():
            # Taken over from a worker on another host: its runner cannot be read from here.
            yield {"type": "exit", "code": None, "_offset": offset}
            return
        buffer = b""
        while True:
            exited = not self.alive(handle)
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            if data:
                buffer += data
                offset += len(data)
                *lines, buffer = buffer.split(b"\n")
                consumed = offset - len(buffer)
                for raw in lines:
                    line = _parse(raw)
                    if line is not None:
                        line["_offset"] = consumed
                        yield line
                continue
            if exited:
                yield {"type": "exit", "code": _exit_code(handle), "_offset": offset}
                return
            time.sleep(POLL_SECONDS)


def _parse(raw: bytes) -> dict | None:
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"type": "log", "message": text}
    return value if isinstance(value, dict) else {"type": "log", "message": text}


# Popen objects of the runners this process started, so their exit codes can be read.
_children: dict[int, subprocess.Popen] = {}


def _exit_code(handle: Handle) -> int | None:
    """The runner's exit code when this process started it; None when another process did."""
    proc = _children.get(handle["pid"])
    return proc.poll() if proc is not None else None
