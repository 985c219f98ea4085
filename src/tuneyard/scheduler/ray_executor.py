"""Ray executor (``TUNEYARD_EXECUTOR=ray``): each run is a Ray job, submitted through the Ray Jobs API.

* **submit**: ``python -m tuneyard.training spec.json --workdir <scratch>`` as the entrypoint, with the
  job's CPUs/GPUs (and GPU type, from Ray's ``accelerator_type:*`` resources) as entrypoint resources.
  The runtime_env carries the spec (``working_dir``: the attempt folder holds only ``spec.json``, whose
  inputs are blob URLs), the storage environment and ``TUNEYARD_RAY_RUNTIME_ENV`` (pip, env_vars, …).
* **stream**: the Ray job's log (the runner's stdout and stderr together) is polled and read on from
  the character offset kept in the handle; lines that are not protocol JSON are the runner's stderr.
* **cancel**: ``stop_job``: Ray sends SIGTERM and, after ``RAY_JOB_STOP_WAIT_TIME_S`` (set per job
  here), SIGKILL; the runner saves a checkpoint in between.
* **re-attach**: the handle holds the ``submission_id`` (``tuneyard-<job>-attempt-<n>``), so another
  worker or a restarted one picks the run up where the relay left it.

Ray admits jobs whatever its free capacity, so the queue stays in tuneyard: ``capacity`` counts the
alive nodes' resources (what ``ray.cluster_resources()`` reports, read through the dashboard's state
API, without joining the cluster as a driver).
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

from tuneyard.context import Context
from tuneyard.scheduler import workspace
from tuneyard.scheduler.executor import Handle
from tuneyard.services import compute

log = logging.getLogger("tuneyard.scheduler.ray")
POLL_SECONDS = 1.0
UNREACHABLE_GIVE_UP_SECONDS = 300.0  # a cluster unreachable this long: the run is reported lost
STOP_GRACE_SECONDS = "120"  # SIGTERM -> SIGKILL: time for the runner to finish its step and save


class RayExecutor:
    name = "ray"
    remote = True

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.settings = ctx.settings
        self._client = None
        self._labels: dict[str, str] = {}  # canonical GPU type -> Ray's accelerator_type label

    @property
    def client(self):
        if self._client is None:  # lazily: the cluster may come up after the worker
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(self.settings.ray_address)
        return self._client

    # -- capacity ---------------------------------------------------------------------------------
    def inventory(self) -> dict[str, int]:
        """GPU type -> GPUs on alive nodes, and ``cpu`` -> how many CPU runners fit."""
        found, labels = compute.ray_inventory(self.settings)
        self._labels.update(labels)
        return found

    def capacity(self, gpu_type: str) -> int:
        return self.inventory().get(gpu_type, 0)

    # -- the four calls ---------------------------------------------------------------------------
    def submit(self, job_id: str, workdir: Path, spec_path: Path, *, gpu_type: str, gpu_count: int) -> Handle:
        self.stop_live("tuneyard_job", job_id)
        submission_id = f"tuneyard-{job_id}-{workdir.name}"
        scratch = f"{self.settings.ray_scratch_dir.rstrip('/')}/{job_id}/{workdir.name}"
        entrypoint = (f"exec {shlex.quote(self.settings.ray_python)} -m tuneyard.training {spec_path.name} "
                      f"--workdir {shlex.quote(scratch)}")
        runtime_env = self.runtime_env(defaults={"RAY_JOB_STOP_WAIT_TIME_S": STOP_GRACE_SECONDS})
        runtime_env["working_dir"] = str(workdir)
        self.client.submit_job(entrypoint=entrypoint, submission_id=submission_id, runtime_env=runtime_env,
                               metadata={"tuneyard_job": job_id}, **self.resources(gpu_type, gpu_count))
        log.info("submitted %s to Ray as %s", job_id, submission_id)
        return {"submission_id": submission_id, "address": self.settings.ray_address, "offset": 0}

    # -- shared with the deployment launcher (inference/ray_launcher.py) ---------------------------
    def runtime_env(self, env_vars: dict[str, str] | None = None, defaults: dict[str, str] | None = None) -> dict:
        """``TUNEYARD_RAY_RUNTIME_ENV`` plus what a remote tuneyard process needs: ``defaults`` (which the
        configured ``env_vars`` may override), storage access, then ``env_vars``."""
        runtime_env = json.loads(json.dumps(self.settings.ray_runtime_env))  # a copy
        runtime_env["env_vars"] = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **(defaults or {}),
                                   **runtime_env.get("env_vars", {}), **workspace.runner_env(self.ctx),
                                   **(env_vars or {})}
        return runtime_env

    def resources(self, gpu_type: str, gpu_count: int) -> dict:
        """``submit_job``'s entrypoint resources for one process on ``gpu_count`` x ``gpu_type``."""
        resources: dict = {"entrypoint_num_cpus": self.settings.ray_cpus_per_job}
        if gpu_type != "cpu":
            if gpu_type not in self._labels:
                self.inventory()  # learns Ray's accelerator_type label of each GPU type
            resources["entrypoint_num_gpus"] = gpu_count
            label = self._labels.get(gpu_type)
            if label:
                resources["entrypoint_resources"] = {f"accelerator_type:{label}": 0.001}
        return resources

    def stop_live(self, key: str, value: str) -> None:
        """At most one live Ray job per tuneyard job (or deployment): a worker that died between
        submitting and recording its handle must not leave a twin running."""
        for details in self.client.list_jobs():
            if (details.metadata or {}).get(key) == value and not details.status.is_terminal():
                log.warning("stopping an earlier Ray job of %s (%s)", value, details.submission_id)
                self.client.stop_job(details.submission_id)

    def alive(self, handle: Handle) -> bool:
        status = self.status(handle)
        return status is not None and not status.is_terminal()

    def cancel(self, handle: Handle) -> None:
        if self.alive(handle):
            self.client.stop_job(handle["submission_id"])

    def stream(self, handle: Handle) -> Iterator[dict]:
        sid = handle["submission_id"]
        offset = pos = int(handle.get("offset", 0))
        buffer = ""
        unreachable_since = None
        while True:
            try:
                status = self.status(handle)
                if status is None:  # the cluster no longer knows the job (e.g. it was restarted)
                    yield {"type": "exit", "code": None, "_offset": offset}
                    return
                logs = self.client.get_job_logs(sid)  # read after the status: complete once terminal
            except Exception as exc:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > UNREACHABLE_GIVE_UP_SECONDS:
                    log.error("Ray unreachable for %s s while following %s: %s", UNREACHABLE_GIVE_UP_SECONDS, sid, exc)
                    yield {"type": "exit", "code": None, "_offset": offset}
                    return
                time.sleep(POLL_SECONDS * 5)
                continue
            unreachable_since = None
            text = logs[pos:]
            if text:
                buffer += text
                pos += len(text)
                *lines, buffer = buffer.split("\n")
                for raw in lines:
                    offset += len(raw) + 1
                    line = parse_line(raw)
                    if line is not None:
                        line["_offset"] = offset
                        yield line
                continue
            if status.is_terminal():
                yield {"type": "exit", "code": self.exit_code(sid), "_offset": offset}
                return
            time.sleep(POLL_SECONDS)

    # -- helpers ----------------------------------------------------------------------------------
    def status(self, handle: Handle):
        """The Ray job's status, or None once the cluster does not know it."""
        try:
            return self.client.get_job_status(handle["submission_id"])
        except RuntimeError as exc:
            if "404" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def exit_code(self, sid: str) -> int | None:
        try:
            return self.client.get_job_info(sid).driver_exit_code
        except Exception:
            return None


def parse_line(raw: str) -> dict | None:
    """A protocol line, or the runner's (or Ray's) stderr chatter."""
    text = raw.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) and "type" in value:
            return value
    return {"type": "stderr", "message": text}
