"""Deployment workers as Ray jobs (``TUNEYARD_EXECUTOR=ray``, or ``TUNEYARD_DEPLOYMENT_EXECUTOR=ray``).

The same Jobs API client, runtime environment (storage access, ``TUNEYARD_RAY_RUNTIME_ENV``) and entrypoint
resources as training runs (scheduler/ray_executor.py):

* **launch**: ``submit_job`` with ``python -m tuneyard.inference.worker … --host 0.0.0.0`` as the
  entrypoint (submission id ``tuneyard-<deployment>-<nonce>``, metadata ``tuneyard_deployment``); a live
  Ray job of an earlier launch of the same deployment is stopped first. The worker's bearer token goes in
  the runtime_env's ``env_vars``;
* **address**: the node the entrypoint runs on (the job's ``driver_node_id``, looked up in the state API)
  and the port the worker prints in its first line (``{"type": "worker.bound", "port": …}``, read from
  ``get_job_logs``);
* **alive**: the Ray job is not terminal (an unreachable cluster counts as alive: the health probes
  decide, and a worker that stays unhealthy is restarted);
* **terminate**: ``stop_job`` (SIGTERM, SIGKILL after ``RAY_JOB_STOP_WAIT_TIME_S`` = 10 s).
"""

from __future__ import annotations

import json
import logging
import shlex
import uuid
from pathlib import Path

from tuneyard.context import Context
from tuneyard.inference.launcher import Handle
from tuneyard.scheduler.ray_executor import RayExecutor

log = logging.getLogger("tuneyard.inference.ray")
STOP_GRACE_SECONDS = "10"


class RayLauncher:
    name = "ray"
    remote = True

    def __init__(self, ctx: Context):
        self.ctx, self.settings = ctx, ctx.settings
        self.ray = RayExecutor(ctx)

    def capacity(self, gpu_type: str) -> int:
        return self.ray.capacity(gpu_type)

    def launch(self, dep_id: str, workdir: Path, args: list[str], *, gpu_type: str, gpu_count: int,
               env: dict[str, str] | None = None) -> Handle:
        self.ray.stop_live("tuneyard_deployment", dep_id)
        submission_id = f"tuneyard-{dep_id}-{uuid.uuid4().hex[:8]}"
        scratch = f"{self.settings.ray_scratch_dir.rstrip('/')}/deployments/{dep_id}"
        cmd = [self.settings.ray_python, "-m", "tuneyard.inference.worker", *args,
               "--host", self.settings.remote_worker_bind_host, "--workdir", scratch]
        defaults = {"RAY_JOB_STOP_WAIT_TIME_S": STOP_GRACE_SECONDS, "HF_HUB_OFFLINE": "1"}
        if gpu_type == "cpu":
            defaults["CUDA_VISIBLE_DEVICES"] = ""
        self.ray.client.submit_job(entrypoint="exec " + shlex.join(cmd), submission_id=submission_id,
                                   runtime_env=self.ray.runtime_env(env, defaults),
                                   metadata={"tuneyard_deployment": dep_id},
                                   **self.ray.resources(gpu_type, gpu_count))
        log.info("submitted the worker of %s to Ray as %s", dep_id, submission_id)
        return {"kind": self.name, "submission_id": submission_id, "address": self.settings.ray_address,
                "pid": None, "host": None}

    def manages(self, handle: Handle | None) -> bool:
        return bool(handle) and handle.get("kind") == self.name

    def describe(self, handle: Handle) -> str:
        return f"Ray job {handle.get('submission_id')}"

    def alive(self, handle: Handle | None) -> bool:
        if not self.manages(handle):
            return False
        try:
            status = self.ray.status(handle)
        except Exception as exc:  # cannot tell: the health probes decide
            log.warning("Ray unreachable while checking %s: %s", handle["submission_id"], exc)
            return True
        return status is not None and not status.is_terminal()

    def exit_code(self, handle: Handle) -> int | None:
        return self.ray.exit_code(handle["submission_id"])

    def url(self, handle: Handle) -> str | None:
        """``http://<node ip>:<port>`` once the worker has printed its port."""
        try:
            port = _bound_port(self.ray.client.get_job_logs(handle["submission_id"]))
            if port is None:
                return None
            node_id = self.ray.client.get_job_info(handle["submission_id"]).driver_node_id
            if not node_id:
                return None
            from ray.util.state import list_nodes

            nodes = list_nodes(address=self.settings.ray_address, filters=[("node_id", "=", node_id)],
                               raise_on_missing_output=False)
        except Exception as exc:
            log.warning("cannot read the address of %s: %s", handle["submission_id"], exc)
            return None
        return f"http://{nodes[0].node_ip}:{port}" if nodes else None

    def log_tail(self, handle: Handle, limit: int = 1500) -> str:
        try:
            return self.ray.client.get_job_logs(handle["submission_id"])[-limit:].strip()
        except Exception:
            return ""

    def terminate(self, handle: Handle | None, grace: float = 10.0) -> None:
        """``stop_job``: Ray sends SIGTERM, then SIGKILL after the job's stop wait time."""
        if not self.alive(handle):
            return
        try:
            self.ray.client.stop_job(handle["submission_id"])
        except Exception as exc:
            log.warning("could not stop %s: %s", handle["submission_id"], exc)


def _bound_port(logs: str) -> int | None:
    for raw in logs.splitlines():
        text = raw.strip()
        if text.startswith('{"type": "worker.bound"'):
            try:
                return int(json.loads(text)["port"])
            except (ValueError, KeyError, TypeError):
                return None
    return None
