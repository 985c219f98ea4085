"""The scheduler loop: claim queued jobs within capacity, start them, keep leases, recover.

Several workers (threads in ``tuneyard serve`` or ``tuneyard worker`` processes on other hosts)
can share one database: claims use ``FOR UPDATE SKIP LOCKED`` plus an advisory lock on Postgres
(``BEGIN IMMEDIATE`` on SQLite), so each queued job is claimed exactly once and capacity is
counted across all of them. A worker that dies stops renewing its leases; another takes over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import func, or_, select, text

from tuneyard.context import Context
from tuneyard.scheduler import workspace
from tuneyard.scheduler.executor import Executor
from tuneyard.scheduler.relay import Relay
from tuneyard.services.job_states import TERMINAL, add_event, transition
from tuneyard.services import cluster, deployment_billing, job_billing, metering  # noqa: F401 (registers sources)
from tuneyard.services.deployment_states import RUNNING as DEPLOYMENT_RUNNING
from tuneyard.services.deployment_states import units as deployment_units
from tuneyard.store.models import Deployment, TrainingJob, utcnow

log = logging.getLogger("tuneyard.scheduler")
CLAIM_LOCK = 741_100  # advisory-lock key serializing claims (capacity checks) on Postgres


def make_executor(name: str, ctx: Context | None = None) -> Executor:
    if name == "local":
        from tuneyard.scheduler.local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from tuneyard.scheduler.ray_executor import RayExecutor

        return RayExecutor(ctx)
    if name == "ssh":
        from tuneyard.scheduler.ssh_executor import SshExecutor

        return SshExecutor(ctx)
    raise ValueError(f"unknown TUNEYARD_EXECUTOR {name!r} (supported: local, ray, ssh)")


class Worker:
    def __init__(self, ctx: Context, executor: Executor | None = None, *, poll_seconds: float = 0.5):
        self.ctx = ctx
        self.executor = executor or make_executor(ctx.settings.executor, ctx)
        self.poll_seconds = poll_seconds
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=ctx.settings.worker_lease_seconds)
        self._relays: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._metered_at = 0.0  # time.monotonic() of the last metering pass

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tuneyard-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            self._stop.wait(self.poll_seconds)

    def tick(self) -> None:
        self._recover()
        self._renew_leases()
        self._check_heartbeats()
        self._claim_and_start()
        self._meter()  # last: a failing metering pass (logged) never holds up scheduling

    # -- claiming ----------------------------------------------------------------------------
    def _capacity(self, gpu_type: str) -> int:
        if hasattr(self.executor, "capacity"):  # a cluster or host pool: the executor knows its size
            return self.executor.capacity(gpu_type)
        return self.ctx.settings.cpu_job_slots if gpu_type == "cpu" else cluster.capacity(gpu_type)

    def _deployment_units(self, s) -> dict[str, int]:
        """Units held by deployments on the same remote cluster or hosts as training (the deployment
        supervisor counts training runs there too): a job must not be submitted to capacity a
        deployment holds, where Ray would queue it or an SSH host would be oversubscribed."""
        settings = self.ctx.settings
        shared = getattr(self.executor, "remote", False) and \
            (settings.deployment_executor or settings.executor) == self.executor.name
        if not shared:
            return {}
        units: dict[str, int] = {}
        for gpu_type, count in s.execute(select(Deployment.gpu_type, Deployment.gpu_count)
                                         .where(Deployment.status.in_(DEPLOYMENT_RUNNING))).all():
            units[gpu_type] = units.get(gpu_type, 0) + deployment_units(gpu_type, count)
        return units

    def _claim(self) -> list[tuple[str, int]]:
        claimed = []
        with self.ctx.db.session() as s:
            if self.ctx.db.is_postgres:
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            stmt = select(TrainingJob).where(TrainingJob.status == "queued").order_by(TrainingJob.seq).limit(20)
            if self.ctx.db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            in_flight = select(TrainingJob.gpu_type, func.sum(TrainingJob.gpu_count)).where(
                TrainingJob.status.in_(("provisioning", "running")))
            if getattr(self.executor, "remote", False) is False:
                # Local runners use this host's hardware: count only the jobs of this host's workers.
                in_flight = in_flight.where(TrainingJob.worker_id.like(f"{socket.gethostname()}:%"))
            busy = dict(s.execute(in_flight.group_by(TrainingJob.gpu_type)).all())
            for gpu_type, units in self._deployment_units(s).items():
                busy[gpu_type] = int(busy.get(gpu_type) or 0) + units
            for job in s.execute(stmt).scalars():
                in_use = int(busy.get(job.gpu_type) or 0)
                if in_use + job.gpu_count > self._capacity(job.gpu_type):
                    continue  # waits while its GPUs are busy; a smaller job behind it may still fit
                busy[job.gpu_type] = in_use + job.gpu_count
                job.attempt += 1
                job.worker_id, job.lease_expires_at = self.id, utcnow() + self.lease
                job.executor, job.executor_handle, job.cancel_requested = self.executor.name, None, job.cancel_requested
                what = f"Provisioning {job.gpu_type} x{job.gpu_count} (attempt {job.attempt})"
                transition(s, job, "provisioning", what, data={"worker": self.id, "attempt": job.attempt})
                claimed.append((job.id, job.attempt))
        return claimed

    def _claim_and_start(self) -> None:
        for job_id, _ in self._claim():
            try:
                with self.ctx.db.session() as s:
                    job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id)).scalar_one()
                    workdir, spec_path = workspace.prepare(self.ctx, s, job,
                                                           remote=getattr(self.executor, "remote", False))
                    gpu_type, gpu_count = job.gpu_type, job.gpu_count
                handle = self.executor.submit(job_id, workdir, spec_path, gpu_type=gpu_type, gpu_count=gpu_count)
                with self.ctx.db.session() as s:
                    job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()).scalar_one()
                    job.executor_handle = handle
                    add_event(s, job_id, "runner.started", f"Runner started ({self.executor.name})",
                              data={"executor": self.executor.name, "worker": self.id})
            except Exception as exc:
                log.exception("could not start job %s", job_id)
                with self.ctx.db.session() as s:
                    job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()).scalar_one()
                    if job.status not in TERMINAL:
                        transition(s, job, "failed", f"Job failed: could not start the runner: {exc}",
                                   error=("runner_start_failed", str(exc)))
                continue
            self._attach(job_id, handle)

    def _attach(self, job_id: str, handle: dict) -> None:
        relay = Relay(self.ctx, self.executor, self.id, job_id, handle)
        thread = threading.Thread(target=relay.run, name=f"relay-{job_id}", daemon=True)
        self._relays[job_id] = thread
        thread.start()

    # -- leases, recovery, heartbeats ---------------------------------------------------------
    def _renew_leases(self) -> None:
        self._relays = {j: t for j, t in self._relays.items() if t.is_alive()}
        if not self._relays:
            return
        with self.ctx.db.session() as s:
            for job in s.execute(select(TrainingJob).where(TrainingJob.id.in_(list(self._relays)),
                                                           TrainingJob.worker_id == self.id)).scalars():
                job.lease_expires_at = utcnow() + self.lease

    def _recover(self) -> None:
        """Take over jobs whose worker is gone: its lease expired, or it was this host's dead process."""
        now = utcnow()
        host = socket.gethostname()
        with self.ctx.db.session() as s:
            stmt = select(TrainingJob).where(
                TrainingJob.status.in_(("provisioning", "running")),
                or_(TrainingJob.worker_id.is_(None), TrainingJob.worker_id != self.id))
            if self.ctx.db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            orphans = []
            for job in s.execute(stmt).scalars():
                if not (_expired(job, now) or _dead_local_worker(job.worker_id, host)):
                    continue
                previous = job.worker_id
                job.worker_id, job.lease_expires_at = self.id, now + self.lease
                add_event(s, job.id, "worker.recovered", f"Worker {previous} is gone; {self.id} took the job over",
                          level="warning", data={"previous_worker": previous})
                orphans.append((job.id, job.executor_handle))
        for job_id, handle in orphans:
            if handle:
                self._attach(job_id, handle)  # replays what the runner wrote; requeues or fails if it died
            else:
                with self.ctx.db.session() as s:
                    job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()).scalar_one()
                    job.worker_id = None
                    transition(s, job, "queued", "Requeued: the worker died before the runner started")

    def _meter(self) -> None:
        """Every metering interval: charge running work, stop what its organization cannot pay for,
        and cancel queued jobs of organizations without credit (services.metering)."""
        if time.monotonic() - self._metered_at < self.ctx.settings.metering_interval_seconds:
            return
        self._metered_at = time.monotonic()
        metering.meter_running(self.ctx.db, self.ctx.settings)
        with self.ctx.db.session() as s:
            job_billing.cancel_unfunded_queued(s)

    def _check_heartbeats(self) -> None:
        cutoff = utcnow() - timedelta(seconds=self.ctx.settings.heartbeat_timeout_seconds)
        with self.ctx.db.session() as s:
            stale = s.execute(select(TrainingJob).where(
                TrainingJob.requires_heartbeat.is_(True), TrainingJob.status.in_(("queued", "provisioning", "running")),
                TrainingJob.cancel_requested.is_(False),
                func.coalesce(TrainingJob.last_heartbeat_at, TrainingJob.created_at) < cutoff)).scalars().all()
            for job in stale:
                message = (f"No heartbeat for {self.ctx.settings.heartbeat_timeout_seconds} s "
                           "(requires_heartbeat is set); cancelling")
                add_event(s, job.id, "heartbeat.timeout", message, level="warning")
                if job.status == "queued":
                    transition(s, job, "cancelled", "Job cancelled: heartbeat timeout")
                else:
                    job.cancel_requested = True


def _expired(job: TrainingJob, now) -> bool:
    return job.lease_expires_at is None or job.lease_expires_at < now


def _dead_local_worker(worker_id: str | None, host: str) -> bool:
    if not worker_id or worker_id.count(":") < 2:
        return False
    worker_host, pid, _ = worker_id.rsplit(":", 2)
    if worker_host != host or not pid.isdigit():
        return False
    return int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}")
