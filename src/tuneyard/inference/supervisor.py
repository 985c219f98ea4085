"""The deployment supervisor: claims queued deployments, starts their worker processes, probes
their health, restarts the ones that die, and ends the ones that were stopped.

It runs as a thread in ``tuneyard serve`` (embedded) or ``tuneyard worker``, beside the training
scheduler, and like it several supervisors can share one database: a claim takes a lease
(``FOR UPDATE SKIP LOCKED`` on Postgres, ``BEGIN IMMEDIATE`` on SQLite), leases are renewed every
tick, and a supervisor takes over the deployments of one that is gone (lease expired, or a dead
process on this host). Taking over means re-attaching to the worker when it still runs (its
handle, pid and port are on the row) and restarting it otherwise.

Workers run where the launcher puts them (inference/launcher.py): on this host by default, as Ray jobs
or on SSH hosts when ``TUNEYARD_DEPLOYMENT_EXECUTOR`` (default: ``TUNEYARD_EXECUTOR``) says so. A remote
worker gets its weights from blob storage (or the nodes' model cache) and takes requests with a token.

The API process never loads a model: workers do (``python -m tuneyard.inference.worker``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import or_, select, text

from tuneyard.context import Context
from tuneyard.inference import worker_auth
from tuneyard.inference.launcher import LocalLauncher, make_launcher
from tuneyard.services import cluster
from tuneyard.services.deployment_states import RUNNING, TERMINAL, accrue, add_event, transition, units
from tuneyard.store.db import after_commit
from tuneyard.store.models import Checkpoint, Deployment, TrainingJob, utcnow

log = logging.getLogger("tuneyard.supervisor")
CLAIM_LOCK = 741_200  # advisory-lock key serializing claims (capacity checks) on Postgres


class Supervisor:
    def __init__(self, ctx: Context, launcher=None, *, poll_seconds: float = 0.5):
        self.ctx, self.settings = ctx, ctx.settings
        self.launcher = launcher or make_launcher(ctx)  # places new workers
        # Workers started on this host earlier (before the configuration named a remote executor) are
        # still checked and ended here.
        self._local = self.launcher if isinstance(self.launcher, LocalLauncher) else LocalLauncher()
        self.poll_seconds = poll_seconds
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=ctx.settings.worker_lease_seconds)
        self._probed: dict[str, float] = {}  # deployment id -> monotonic time of the last probe
        self._unhealthy_since: dict[str, float] = {}
        self._http = httpx.Client(timeout=ctx.settings.deployment_health_timeout_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tuneyard-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising. Workers keep running: the next supervisor re-attaches to them."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)
        self._http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("supervisor tick failed")
            self._stop.wait(self.poll_seconds)

    def tick(self) -> None:
        self._reap()
        self._recover()
        self._renew_leases()
        self._claim_and_launch()
        self._watch()

    def _of(self, handle):
        """The launcher that can check and end the worker behind ``handle`` (None without a handle, or for
        one out of reach: on another host, or placed by an executor this supervisor is not configured for)."""
        if not handle:
            return None
        if self.launcher.manages(handle):
            return self.launcher
        return self._local if self._local.manages(handle) else None

    # -- claiming and launching --------------------------------------------------------------
    def _capacity(self, gpu_type: str) -> int:
        if self.launcher.remote:  # a Ray cluster or SSH hosts: what they have
            return self.launcher.capacity(gpu_type)
        return self.settings.cpu_deployment_slots if gpu_type == "cpu" else cluster.capacity(gpu_type)

    def _busy(self, s) -> dict[str, int]:
        """Units in use, per GPU type, where new workers go: this host's deployments, or, on a remote
        cluster (shared by every supervisor), all running deployments and the training runs there."""
        busy: dict[str, int] = {}
        if self.launcher.remote:
            rows = list(s.execute(select(Deployment.gpu_type, Deployment.gpu_count).where(
                Deployment.status.in_(RUNNING))).all())
            rows += s.execute(select(TrainingJob.gpu_type, TrainingJob.gpu_count).where(
                TrainingJob.executor == self.launcher.name,
                TrainingJob.status.in_(("provisioning", "running")))).all()
        else:
            host = socket.gethostname()
            rows = s.execute(select(Deployment.gpu_type, Deployment.gpu_count).where(
                Deployment.status.in_(RUNNING), Deployment.worker_id.like(f"{host}:%"))).all()
        for gpu_type, count in rows:
            busy[gpu_type] = busy.get(gpu_type, 0) + units(gpu_type, count)
        return busy

    def _claim_and_launch(self) -> None:
        claimed = []
        with self.ctx.db.session() as s:
            if self.ctx.db.is_postgres:
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            stmt = select(Deployment).where(Deployment.status == "queued").order_by(Deployment.seq).limit(20)
            if self.ctx.db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            queued = list(s.execute(stmt).scalars())
            if not queued:
                return
            busy = self._busy(s)
            for dep in queued:
                need = units(dep.gpu_type, dep.gpu_count)
                if busy.get(dep.gpu_type, 0) + need > self._capacity(dep.gpu_type):
                    continue
                busy[dep.gpu_type] = busy.get(dep.gpu_type, 0) + need
                dep.worker_id, dep.lease_expires_at = self.id, utcnow() + self.lease
                transition(s, dep, "provisioning", f"Provisioning {dep.gpu_type} x{dep.gpu_count}",
                           data={"supervisor": self.id})
                claimed.append(dep.id)
        for dep_id in claimed:
            self._launch(dep_id)

    def _launch(self, dep_id: str) -> None:
        try:
            with self.ctx.db.session() as s:
                dep = self._row(s, dep_id)
                if dep.status != "provisioning":
                    return
                args = self._worker_args(s, dep)
                gpu_type, gpu_count, workdir = dep.gpu_type, dep.gpu_count, self._workdir(dep.id)
            env, nonce = {}, None
            if self.launcher.remote:  # it listens on the network: requests need the token
                nonce = worker_auth.new_nonce()
                env[worker_auth.ENV] = worker_auth.token(self.settings, dep_id, nonce)
            handle = self.launcher.launch(dep_id, workdir, args, gpu_type=gpu_type, gpu_count=gpu_count, env=env)
            handle.setdefault("started_at", time.time())
            if nonce:
                handle["auth"] = nonce
        except Exception as exc:
            log.exception("could not start the worker of %s", dep_id)
            with self.ctx.db.session() as s:
                dep = self._row(s, dep_id)
                if dep.status not in TERMINAL:
                    transition(s, dep, "failed", f"Deployment failed: could not start its worker: {exc}",
                               error=("worker_start_failed", str(exc)))
            return
        with self.ctx.db.session() as s:
            dep = self._row(s, dep_id)
            dep.worker_handle, dep.worker_url = handle, None
            add_event(s, dep_id, "worker.started", f"{self.launcher.describe(handle)} started, loading the model",
                      data={"pid": handle.get("pid"), "host": handle.get("host"), "placement": self.launcher.name,
                            "supervisor": self.id})
            if dep.status in TERMINAL:  # stopped while it was being launched
                self.launcher.terminate(handle)
        self._probed[dep_id] = time.monotonic()

    def _workdir(self, dep_id: str) -> Path:
        return self.settings.data_dir / "deployments" / dep_id

    def _worker_args(self, s, dep: Deployment) -> list[str]:
        """The worker's command line; a training job's checkpoint is copied next to it first (or, for a
        remote worker, named by its blob URL: the worker fetches it)."""
        cfg, st = dep.config or {}, self.settings
        model = dep.base_model
        adapter_args: list[str] = []
        if dep.checkpoint_id:
            if self.launcher.remote:
                ckpt = s.execute(select(Checkpoint).where(Checkpoint.id == dep.checkpoint_id)).scalar_one()
                local = self.ctx.blobs.url(ckpt.blob_prefix).rstrip("/") + "/"
            else:
                local = self._fetch_checkpoint(s, dep)
            if dep.adapter:
                adapter_args = ["--adapter", f"{dep.id}={local}"]
            else:
                model = str(local)
        return ["--model", model, *adapter_args, "--served-name", dep.name, "--engine", dep.engine,
                "--device", "cpu" if dep.gpu_type == "cpu" else "cuda",
                "--max-batch-size", str(cfg.get("max_batch_size", st.inference_max_batch_size)),
                "--max-model-len", str(cfg.get("max_model_len", st.inference_max_model_len)),
                "--default-max-tokens", str(st.inference_default_max_tokens), "--threads", str(st.inference_threads),
                "--orphan-timeout", str(st.deployment_orphan_timeout_seconds)]

    def _fetch_checkpoint(self, s, dep: Deployment) -> Path:
        ckpt = s.execute(select(Checkpoint).where(Checkpoint.id == dep.checkpoint_id)).scalar_one()
        target = self._workdir(dep.id) / "model"
        target.mkdir(parents=True, exist_ok=True)
        for f in ckpt.files:
            dest = target / f["path"]
            if dest.is_file() and dest.stat().st_size == f["bytes"]:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            with open(tmp, "wb") as out:
                for chunk in self.ctx.blobs.iter_bytes(f"{ckpt.blob_prefix}/{f['path']}"):
                    out.write(chunk)
            os.replace(tmp, dest)
        return target

    # -- watching ----------------------------------------------------------------------------
    def _owned(self, s, statuses) -> list[Deployment]:
        return list(s.execute(select(Deployment).where(Deployment.worker_id == self.id,
                                                       Deployment.status.in_(statuses))).scalars())

    def _watch(self) -> None:
        with self.ctx.db.session(readonly=True) as s:
            ids = [d.id for d in self._owned(s, RUNNING)]
        now = time.monotonic()
        for dep_id in ids:
            if now - self._probed.get(dep_id, 0) < self.settings.deployment_health_interval_seconds:
                continue
            self._probed[dep_id] = now
            try:
                self._check(dep_id)
            except Exception:
                log.exception("health check of %s failed", dep_id)

    def _check(self, dep_id: str) -> None:
        with self.ctx.db.session(readonly=True) as s:
            dep = self._row(s, dep_id)
            handle, status, url = dep.worker_handle, dep.status, dep.worker_url
        if status not in RUNNING:
            return
        launcher = self._of(handle)
        if launcher is None or not launcher.alive(handle):
            return self._worker_gone(dep_id, handle)
        url = url or launcher.url(handle)
        auth = worker_auth.headers(self.settings, dep_id, handle.get("auth"))
        probe = self._probe(url, auth) if url else None
        with self.ctx.db.session() as s:
            dep = self._row(s, dep_id, lock=True)
            if dep.status not in RUNNING or dep.worker_id != self.id:
                return
            dep.worker_url = url
            if probe is not None and probe.get("status") == "ok":
                self._healthy(s, dep, probe)
            elif dep.status == "provisioning":
                waited = time.time() - handle.get("started_at", time.time())
                if waited > self.settings.deployment_start_timeout_seconds:
                    launcher.terminate(handle)
                    transition(s, dep, "failed", f"Deployment failed: the worker did not become ready in "
                               f"{waited:.0f} s", error=("start_timeout", launcher.log_tail(handle, 500)))
            else:
                self._unhealthy(s, dep, probe)

    def _probe(self, url: str, headers: dict[str, str]) -> dict | None:
        try:
            r = self._http.get(url + "/health", headers=headers)
            return r.json() if r.headers.get("content-type", "").startswith("application/json") else None
        except (httpx.HTTPError, ValueError):
            return None

    def _healthy(self, s, dep: Deployment, probe: dict) -> None:
        dep.health, dep.health_checked_at, dep.health_failures = probe, utcnow(), 0
        self._unhealthy_since.pop(dep.id, None)
        accrue(dep)
        if dep.status == "provisioning":
            transition(s, dep, "serving", f"Serving ({probe.get('engine')} engine, worker pid {probe.get('pid')})",
                       data={"engine": probe.get("engine"), "worker_url": dep.worker_url})
        elif dep.status == "unhealthy":
            transition(s, dep, "serving", "Health checks pass again")

    def _unhealthy(self, s, dep: Deployment, probe: dict | None) -> None:
        dep.health_failures += 1
        dep.health_checked_at = utcnow()
        reason = (probe or {}).get("error") or "no answer to /health"
        if dep.status == "serving" and dep.health_failures >= self.settings.deployment_unhealthy_after:
            transition(s, dep, "unhealthy", f"Unhealthy: {dep.health_failures} failed health checks ({reason})")
            self._unhealthy_since[dep.id] = time.monotonic()
        elif dep.status == "unhealthy":
            since = self._unhealthy_since.setdefault(dep.id, time.monotonic())
            if time.monotonic() - since > self.settings.deployment_restart_unhealthy_after_seconds:
                launcher = self._of(dep.worker_handle)
                if launcher is not None:
                    launcher.terminate(dep.worker_handle, grace=2.0)
                self._restart_or_fail(s, dep, f"Unhealthy for over "
                                      f"{self.settings.deployment_restart_unhealthy_after_seconds:.0f} s ({reason})")

    def _worker_gone(self, dep_id: str, handle) -> None:
        """The worker exited: a deployment that was serving turns ``unhealthy`` (the gateway answers 503
        ``upstream_unavailable``), then its worker is started again; one still starting fails."""
        launcher = self._of(handle) if handle else None
        code = launcher.exit_code(handle) if launcher else None
        tail = launcher.log_tail(handle) if launcher else ""
        why = "The worker process exited" + (f" (exit code {code})" if code is not None else "")
        with self.ctx.db.session() as s:
            dep = self._row(s, dep_id, lock=True)
            if dep.status not in RUNNING or dep.worker_id != self.id:
                return
            if dep.status == "provisioning":
                last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
                transition(s, dep, "failed", f"Deployment failed: the worker exited while starting "
                           f"(exit code {code}): {last}", error=("worker_start_failed", tail[-1000:]))
                return
            if dep.status == "serving":
                dep.worker_url = None
                transition(s, dep, "unhealthy", f"Unhealthy: {why}", data={"exit_code": code})
        with self.ctx.db.session() as s:
            dep = self._row(s, dep_id, lock=True)
            if dep.status == "unhealthy" and dep.worker_id == self.id:
                self._restart_or_fail(s, dep, why)

    def _restart_or_fail(self, s, dep: Deployment, why: str) -> None:
        if dep.restarts >= self.settings.deployment_max_restarts:
            transition(s, dep, "failed", f"Deployment failed: {why}; gave up after {dep.restarts} restarts",
                       error=("worker_crashed", why))
            return
        dep.restarts += 1
        dep.worker_url, dep.health_failures = None, 0
        self._unhealthy_since.pop(dep.id, None)
        transition(s, dep, "provisioning", f"{why}; restarting it (restart {dep.restarts})")
        dep_id = dep.id
        after_commit(s, lambda: self._launch(dep_id))

    # -- stopping, leases, recovery -----------------------------------------------------------
    def _reap(self) -> None:
        """End the workers of deployments that were stopped or failed (on this host, or on the remote
        cluster this supervisor places workers on)."""
        with self.ctx.db.session(readonly=True) as s:
            rows = s.execute(select(Deployment.id, Deployment.worker_handle).where(
                Deployment.status.in_(TERMINAL), Deployment.worker_handle.is_not(None))).all()
        for dep_id, handle in rows:
            launcher = self._of(handle)  # (a JSON null handle passes the SQL filter: None here)
            if launcher is None:
                continue
            launcher.terminate(handle)
            with self.ctx.db.session() as s:
                dep = self._row(s, dep_id, lock=True)
                if dep.status in TERMINAL and dep.worker_handle == handle:
                    pid = handle.get("pid")
                    dep.worker_handle, dep.worker_url = None, None
                    add_event(s, dep_id, "worker.stopped", f"{launcher.describe(handle)} stopped",
                              data={"pid": pid, "placement": launcher.name})
            self._probed.pop(dep_id, None)

    def _renew_leases(self) -> None:
        with self.ctx.db.session() as s:
            for dep in self._owned(s, RUNNING):
                dep.lease_expires_at = utcnow() + self.lease

    def _recover(self) -> None:
        """Take over the deployments of a supervisor that is gone: re-attach or restart their workers."""
        now = utcnow()
        host = socket.gethostname()
        relaunch = []
        with self.ctx.db.session() as s:
            stmt = select(Deployment).where(Deployment.status.in_(RUNNING),
                                            or_(Deployment.worker_id.is_(None), Deployment.worker_id != self.id))
            if self.ctx.db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            for dep in s.execute(stmt).scalars():
                expired = dep.lease_expires_at is None or dep.lease_expires_at < now
                if not (expired or _dead_local_process(dep.worker_id, host)):
                    continue
                previous, dep.worker_id, dep.lease_expires_at = dep.worker_id, self.id, now + self.lease
                launcher = self._of(dep.worker_handle)
                if launcher is not None and dep.worker_handle and launcher.alive(dep.worker_handle):
                    what = launcher.describe(dep.worker_handle)
                    add_event(s, dep.id, "worker.reattached", f"Supervisor {previous} is gone; {self.id} re-attached "
                              f"to {what[0].lower() + what[1:]}", level="warning",
                              data={"previous_supervisor": previous, "pid": dep.worker_handle.get("pid")})
                    continue
                if launcher is not None or not dep.worker_handle:
                    dep.worker_url = None
                    if dep.status != "provisioning":
                        dep.restarts += 1
                        transition(s, dep, "provisioning", f"Supervisor {previous} is gone and so is the worker; "
                                   "restarting it")
                    else:
                        add_event(s, dep.id, "worker.relaunch", f"Supervisor {previous} is gone before the worker "
                                  "was ready; starting it again", level="warning")
                    relaunch.append(dep.id)
        for dep_id in relaunch:
            self._launch(dep_id)

    def _row(self, s, dep_id: str, *, lock: bool = False) -> Deployment:
        stmt = select(Deployment).where(Deployment.id == dep_id)
        return s.execute(stmt.with_for_update() if lock else stmt).scalar_one()


def _dead_local_process(owner: str | None, host: str) -> bool:
    if not owner or owner.count(":") < 2:
        return False
    owner_host, pid, _ = owner.rsplit(":", 2)
    if owner_host != host or not pid.isdigit():
        return False
    return int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}")
