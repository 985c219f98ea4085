"""Starting and ending deployment worker processes: on this host (``LocalLauncher``), on a Ray cluster
(``inference/ray_launcher.py``) or on SSH hosts (``inference/ssh_launcher.py``), chosen by
``make_launcher`` from ``TUNEYARD_DEPLOYMENT_EXECUTOR`` (default: ``TUNEYARD_EXECUTOR``).

Every launcher has the same calls (``launch``, ``manages``, ``alive``, ``exit_code``, ``url``,
``log_tail``, ``terminate``, ``describe``) over a JSON-able handle stored on the deployment row; a
remote launcher's handle carries ``kind`` (``ray``/``ssh``), a local one has none.

A local worker is started in its own session with its output in a file of its workdir (not a pipe), so
it outlives the process that started it: a restarted ``tuneyard serve`` re-attaches to it from
the handle stored on the deployment row. The handle names the workdir, which is on the worker's
command line; that guards every pid check against pid reuse.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

Handle = dict[str, Any]
LOG_NAME = "worker.log"
STATE_NAME = "worker.json"

_children: dict[int, subprocess.Popen] = {}


def make_launcher(ctx):
    """The launcher that places new deployment workers, from the settings."""
    kind = ctx.settings.deployment_executor or ctx.settings.executor
    if kind == "local":
        return LocalLauncher()
    if kind == "ray":
        from tuneyard.inference.ray_launcher import RayLauncher

        return RayLauncher(ctx)
    if kind == "ssh":
        from tuneyard.inference.ssh_launcher import SshLauncher

        return SshLauncher(ctx)
    raise ValueError(f"unknown deployment executor {kind!r} (supported: local, ray, ssh)")


class LocalLauncher:
    name = "local"
    remote = False

    def launch(self, dep_id: str, workdir: Path, args: list[str], *, gpu_type: str, gpu_count: int,
               env: dict[str, str] | None = None) -> Handle:
        workdir.mkdir(parents=True, exist_ok=True)
        state = workdir / STATE_NAME
        state.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", **(env or {}))
        if gpu_type == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        cmd = [sys.executable, "-m", "tuneyard.inference.worker", *args, "--state-file", str(state)]
        with open(workdir / LOG_NAME, "ab") as out:
            out.write(f"\n--- starting worker at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode())
            out.flush()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                                    env=env, start_new_session=True)
        _children[proc.pid] = proc
        return {"pid": proc.pid, "host": socket.gethostname(), "workdir": str(workdir),
                "started_at": time.time()}

    def local(self, handle: Handle | None) -> bool:
        return bool(handle) and handle.get("host") == socket.gethostname()

    def manages(self, handle: Handle | None) -> bool:
        """Whether this launcher can check and end the worker behind ``handle``."""
        return bool(handle) and "kind" not in handle and self.local(handle)

    def describe(self, handle: Handle) -> str:
        return f"Worker process {handle.get('pid')}"

    def alive(self, handle: Handle | None) -> bool:
        if not self.local(handle) or not handle.get("pid"):
            return False
        pid = handle["pid"]
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            return False
        if handle["workdir"].encode() not in cmdline:
            return False  # the pid now belongs to someone else
        if status == "Z":
            self.exit_code(handle)  # reap it
            return False
        return True

    def exit_code(self, handle: Handle) -> int | None:
        proc = _children.get(handle.get("pid"))
        return proc.poll() if proc is not None else None

    def url(self, handle: Handle) -> str | None:
        """The worker's base URL once it has bound its port (from its state file)."""
        try:
            state = json.loads((Path(handle["workdir"]) / STATE_NAME).read_text())
        except (OSError, ValueError):
            return None
        if state.get("pid") != handle.get("pid"):
            return None
        return f"http://{state['host']}:{state['port']}"

    def log_tail(self, handle: Handle, limit: int = 1500) -> str:
        try:
            with open(Path(handle["workdir"]) / LOG_NAME, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def terminate(self, handle: Handle, grace: float = 10.0) -> None:
        """SIGTERM now, SIGKILL after ``grace`` seconds if it is still there (in the background)."""
        if not self.alive(handle):
            return
        pid = handle["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return

        def finish():
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self.alive(handle):
                    return
                time.sleep(0.2)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.2)
            self.alive(handle)  # reap

        threading.Thread(target=finish, name=f"terminate-{pid}", daemon=True).start()
