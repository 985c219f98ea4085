"""``/v1/training_jobs``: create, list, get, cancel, events, logs (SSE), wait, download."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from tuneyard.client import errors
from tuneyard.client._base import ResourceGroup
from tuneyard.client.types import JobEvent, JobModel, JobProgress, Page, TrainingJob

ProgressCallback = Callable[[JobProgress], None]
RECONNECT_DELAYS = (1.0, 2.0, 4.0, 5.0)
# Status-change events are ``job.<status>``; other ``job.*`` events (job.cancel_requested) are not.
JOB_STATUSES = frozenset({"queued", "provisioning", "running", "completed", "failed", "cancelled"})


def _is_end_marker(text: str) -> bool:
    """The server's last line on a finished job's stream: ``[Job completed]`` (or failed/cancelled)."""
    return text.startswith("[Job ") and text.endswith("]")


class TrainingJobs(ResourceGroup):
    def create(self, base_model: str, dataset_id: str, *, method: str = "sft", output_name: str | None = None,
               reward_function_id: str | None = None, reward_function_ids: list[str] | None = None,
               reward_weights: list[float] | None = None, hyperparameters: dict[str, Any] | None = None,
               gpu_type: str | None = None, gpu_count: int | None = None, provider: str | None = None,
               validation_dataset_id: str | None = None, resume_from: str | None = None,
               **extra: Any) -> TrainingJob:
        body: dict[str, Any] = {
            "base_model": base_model, "dataset_id": dataset_id, "method": method, "output_name": output_name,
            "reward_function_id": reward_function_id, "reward_function_ids": reward_function_ids,
            "reward_weights": reward_weights, "hyperparameters": hyperparameters or {}, "provider": provider,
            "validation_dataset_id": validation_dataset_id, "resume_from": resume_from, **extra,
        }
        if gpu_type:
            body["gpu"] = {"gpu_type": gpu_type, "gpu_count": gpu_count or 1}
        body = {k: v for k, v in body.items() if v is not None}
        return TrainingJob.model_validate(self._t.json("POST", "/v1/training_jobs", json=body))

    def get(self, job_id: str) -> TrainingJob:
        return TrainingJob.model_validate(self._t.json("GET", f"/v1/training_jobs/{job_id}"))

    def list(self, *, limit: int = 20, after: str | None = None, status: str | None = None,
             method: str | None = None) -> Page[TrainingJob]:
        return self._list("/v1/training_jobs", TrainingJob, limit=limit, after=after, status=status, method=method)

    def cancel(self, job_id: str) -> TrainingJob:
        return TrainingJob.model_validate(self._t.json("POST", f"/v1/training_jobs/{job_id}/cancel"))

    # -- events -------------------------------------------------------------------------------------

    def events(self, job_id: str, *, after: str | int | None = None, limit: int = 100) -> Page[JobEvent]:
        """One page of lifecycle events, oldest first; ``after`` is an event id or sequence number."""
        body = self._t.json("GET", f"/v1/training_jobs/{job_id}/events",
                            params={"after": None if after is None else str(after), "limit": limit})

        def fetch_next(cursor: str) -> Page[JobEvent]:
            return self.events(job_id, after=cursor, limit=limit)

        return Page[JobEvent](data=[JobEvent.model_validate(e) for e in body["data"]],
                              has_more=bool(body.get("has_more")), fetch_next=fetch_next)

    def stream_events(self, job_id: str, *, after: str | int | None = None) -> Iterator[JobEvent]:
        """Events as they happen, until the job is terminal; reconnects (resuming) when the stream drops."""
        cursor = None if after is None else str(after)
        failures = 0
        while True:
            try:
                with self._t.sse("GET", f"/v1/training_jobs/{job_id}/events",
                                 params={"stream": "true", "after": cursor}, read_timeout=120) as stream:
                    failures = 0
                    for sse in stream:
                        if _is_end_marker(sse.data):
                            return
                        event = JobEvent.model_validate(json.loads(sse.data))
                        cursor = str(event.seq) if event.seq is not None else event.id
                        yield event
                if self.get(job_id).done:  # closed without its end marker: finish once the job has
                    return
            except errors.ConnectionFailed:
                failures = _backoff(failures)

    # -- logs ---------------------------------------------------------------------------------------

    def logs(self, job_id: str) -> list[str]:
        """The whole log so far (``[]`` when the runner has written nothing yet)."""
        try:
            response = self._t.request("GET", f"/v1/training_jobs/{job_id}/logs/full")
        except errors.NotFound as exc:
            if exc.type is None:  # a plain-text 404 means "no lines yet"; a JSON one, "no such job"
                return []
            raise
        return response.text.splitlines()

    def stream_logs(self, job_id: str, *, poll_interval: float = 2.0) -> Iterator[str]:
        """Log lines live, until the job ends; the last line is the server's ``[Job <status>]``.

        Waits (polling) while the job is still queued, and resumes after the last line received
        (``Last-Event-ID``) when the connection drops.
        """
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                with self._t.sse("GET", f"/v1/training_jobs/{job_id}/logs", headers=headers,
                                 read_timeout=120) as stream:
                    failures = 0
                    for sse in stream:
                        if sse.id:
                            last_id = sse.id
                        yield sse.data
                        if _is_end_marker(sse.data):
                            return
                job = self.get(job_id)
                if job.done:
                    yield f"[Job {job.status}]"
                    return
            except errors.BadRequest as exc:
                if exc.code != "job_pending":
                    raise
                time.sleep(poll_interval)  # queued: no runner yet
            except errors.ConnectionFailed:
                failures = _backoff(failures)

    # -- waiting ------------------------------------------------------------------------------------

    def wait(self, job_id: str, *, timeout: float | None = None, poll_interval: float = 1.0,
             on_progress: ProgressCallback | None = None) -> TrainingJob:
        """Block until the job is completed, failed or cancelled, and return it.

        ``on_progress`` is called with a :class:`JobProgress` for each new event (status changes,
        metrics with step/loss/reward, checkpoints) and is how the CLI draws its progress bar.
        Raises :class:`WaitTimeout` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        cursor: str | None = None
        state = JobProgress(job_id=job_id, status="queued")
        while True:
            job = self.get(job_id)
            if on_progress is not None:
                cursor = self._report(job, cursor, state, on_progress)
            if job.done:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.WaitTimeout(f"job {job_id} is still {job.status} after {timeout:g}s")
            time.sleep(poll_interval)

    def _report(self, job: TrainingJob, cursor: str | None, state: JobProgress,
                on_progress: ProgressCallback) -> str | None:
        state.total_steps = job.total_steps or state.total_steps
        page = self.events(job.id, after=cursor)
        while True:
            for event in page.data:
                cursor = str(event.seq) if event.seq is not None else event.id
                _apply(state, event)
                on_progress(state.model_copy())
            if not page.has_more:
                break
            page = self.events(job.id, after=cursor)
        if state.status != job.status and job.done:
            state.status = job.status
            state.event = None
            on_progress(state.model_copy())
        return cursor

    # -- checkpoints --------------------------------------------------------------------------------

    def model(self, job_id: str) -> JobModel:
        """The final checkpoint's files, as signed URLs (fetchable without the API key)."""
        return JobModel.model_validate(self._t.json("GET", f"/v1/training_jobs/{job_id}/model"))

    def download(self, job_id: str, dest: str | Path, *,
                 on_file: Callable[[str, int], None] | None = None) -> Path:
        """Save the final checkpoint's files under ``dest/<job_id>/`` and return that folder."""
        manifest = self.model(job_id)
        root = Path(dest).expanduser() / job_id
        root.mkdir(parents=True, exist_ok=True)
        for f in manifest.files:
            rel = PurePosixPath(f.path)
            if rel.is_absolute() or ".." in rel.parts:
                continue  # never write outside the target folder
            target = root.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            _fetch(f.url, target)
            if on_file:
                on_file(f.path, target.stat().st_size)
        return root


def _apply(state: JobProgress, event: JobEvent) -> None:
    state.event = event
    if event.type.startswith("job.") and event.type[len("job."):] in JOB_STATUSES:
        state.status = event.type[len("job."):]
    data = event.data or {}
    if data.get("total_steps"):
        state.total_steps = int(data["total_steps"])
    if event.type == "metrics":
        if data.get("step") is not None:
            state.step = int(data["step"])
        if data.get("loss") is not None:
            state.loss = float(data["loss"])
        if data.get("reward_mean") is not None:
            state.reward = float(data["reward_mean"])


def _fetch(url: str, target: Path) -> None:
    """Download a signed URL (no Authorization header: the signature is the credential)."""
    tmp = target.with_name(target.name + ".part")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(60.0, read=300.0)) as response:
            if response.status_code >= 400:
                response.read()
                raise errors.from_response(response)
            with tmp.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
    except httpx.TransportError as exc:
        tmp.unlink(missing_ok=True)
        raise errors.ConnectionFailed(f"download of {target.name} failed: {exc}") from None
    tmp.replace(target)


def _backoff(failures: int) -> int:
    if failures >= 8:
        raise errors.ConnectionFailed("lost the connection to tuneyard and could not get it back")
    time.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
    return failures + 1
