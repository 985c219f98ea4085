"""Deployment workers on SSH hosts (``TUNEYARD_EXECUTOR=ssh``, or ``TUNEYARD_DEPLOYMENT_EXECUTOR=ssh``).

The hosts, stored keys, pinned host keys, connections and the venv set-up are the training executor's
(scheduler/ssh_executor.py). Per deployment, in ``~/<ssh_runner_dir>/deployments/<id>/``:

* **launch**: a 0600 ``env.sh`` (storage credentials, the worker's bearer token; deleted once read) and
  ``python -m tuneyard.inference.worker … --host 0.0.0.0 --state-file worker.json``, started detached
  (``setsid``; pid in ``pid``, exit code in ``exit_code``, output appended to ``worker.log``). The host is
  the one with the most free units of the GPU type, counting training runs and other deployments;
* **address**: ``http://<the host's address>:<port>``, the port read from ``worker.json`` over SFTP;
* **alive**: ``kill -0`` on the pid whose command line is this worker's (an unreachable host counts as
  alive: the health probes decide, and a worker that stays unhealthy is restarted);
* **terminate**: SIGTERM, and SIGKILL after the grace period (a detached ``sleep; kill`` on the host).
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

from sqlalchemy import select

from tuneyard.context import Context
from tuneyard.inference.launcher import LOG_NAME, STATE_NAME, Handle
from tuneyard.scheduler import workspace
from tuneyard.scheduler.ssh_executor import SshExecutor
from tuneyard.services.deployment_states import RUNNING, units
from tuneyard.store.models import Deployment

log = logging.getLogger("tuneyard.inference.ssh")
MARKER = "tuneyard.inference.worker"


class SshLauncher:
    name = "ssh"
    remote = True

    def __init__(self, ctx: Context):
        self.ctx, self.settings = ctx, ctx.settings
        self.ssh = SshExecutor(ctx)

    def capacity(self, gpu_type: str) -> int:
        return self.ssh.capacity(gpu_type)

    def _deployments_per_host(self, gpu_type: str, exclude: str) -> dict[str, int]:
        used: dict[str, int] = {}
        with self.ctx.db.session(readonly=True) as s:
            for dep_id, handle, count in s.execute(select(Deployment.id, Deployment.worker_handle, Deployment.gpu_count)
                                                   .where(Deployment.status.in_(RUNNING),
                                                          Deployment.gpu_type == gpu_type)):
                if dep_id != exclude and handle and handle.get("kind") == self.name and handle.get("host"):
                    used[handle["host"]] = used.get(handle["host"], 0) + units(gpu_type, count)
        return used

    def launch(self, dep_id: str, workdir: Path, args: list[str], *, gpu_type: str, gpu_count: int,
               env: dict[str, str] | None = None) -> Handle:
        need = units(gpu_type, gpu_count)
        host = self.ssh._place(gpu_type, need, self._deployments_per_host(gpu_type, exclude=dep_id))
        python = self.ssh._python(host)
        rundir = f"{self.settings.ssh_runner_dir.rstrip('/')}/deployments/{dep_id}"
        q = shlex.quote(rundir)
        self.ssh._run(host, f"mkdir -p {q} && rm -f {q}/pid {q}/exit_code {q}/{STATE_NAME}")
        worker_env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
                      **workspace.runner_env(self.ctx), **(env or {})}
        if gpu_type == "cpu":
            worker_env["CUDA_VISIBLE_DEVICES"] = ""
        self.ssh.write_env(host, rundir, worker_env)
        cmd = [python, "-m", MARKER, *args, "--host", self.settings.remote_worker_bind_host,
               "--workdir", ".", "--state-file", STATE_NAME]
        pid = self.ssh.start_detached(host, rundir, f"{shlex.join(cmd)} >>{LOG_NAME} 2>&1")
        log.info("started the worker of %s on %s (pid %s)", dep_id, host.name, pid)
        return {"kind": self.name, "host": host.name, "address": host.host, "dir": rundir, "pid": pid}

    def manages(self, handle: Handle | None) -> bool:
        return bool(handle) and handle.get("kind") == self.name and handle.get("host") in self.ssh.hosts

    def describe(self, handle: Handle) -> str:
        return f"Worker process {handle.get('pid')} on {handle.get('host')}"

    def alive(self, handle: Handle | None) -> bool:
        if not self.manages(handle):
            return False
        try:
            return self.ssh.running(self.ssh.hosts[handle["host"]], handle["dir"], int(handle["pid"]), MARKER)
        except Exception as exc:  # cannot tell: the health probes decide
            log.warning("cannot reach %s: %s", handle["host"], exc)
            return True

    def _cat(self, handle: Handle, command: str) -> str:
        try:
            return self.ssh._run(self.ssh.hosts[handle["host"]], command, check=False, timeout=60)
        except Exception:
            return ""

    def exit_code(self, handle: Handle) -> int | None:
        code = self._cat(handle, f"cat {shlex.quote(handle['dir'])}/exit_code 2>/dev/null").strip()
        return int(code) if code.lstrip("-").isdigit() else None

    def url(self, handle: Handle) -> str | None:
        try:
            state = json.loads(self._cat(handle, f"cat {shlex.quote(handle['dir'])}/{STATE_NAME} 2>/dev/null"))
        except ValueError:
            return None
        if state.get("pid") != handle.get("pid"):
            return None
        return f"http://{handle['address']}:{state['port']}"

    def log_tail(self, handle: Handle, limit: int = 1500) -> str:
        return self._cat(handle, f"tail -c {int(limit)} {shlex.quote(handle['dir'])}/{LOG_NAME} 2>/dev/null").strip()

    def terminate(self, handle: Handle | None, grace: float = 10.0) -> None:
        if not self.alive(handle):
            return
        pid, marker = int(handle["pid"]), shlex.quote(MARKER)
        still_ours = f"tr '\\0' ' ' </proc/{pid}/cmdline 2>/dev/null | grep -qF {marker}"
        later = f"sleep {float(grace)}; {still_ours} && kill -KILL {pid}"
        self._cat(handle, f"kill -TERM {pid}; setsid sh -c {shlex.quote(later)} >/dev/null 2>&1 </dev/null &")
