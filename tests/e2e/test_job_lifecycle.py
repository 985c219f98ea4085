"""Cancelling, heartbeats and server restarts with real runs on the bundled model."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import ServeProcess

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROWS = [{"prompt": f"Count to {i}.", "completion": " ".join(str(n) for n in range(1, i + 2))} for i in range(16)]
LONG = {"max_steps": 400, "batch_size": 2, "max_length": 48, "lora_r": 4, "learning_rate": 1e-4,
        "checkpoint_every": 3, "seed": 3}


def upload(c):
    data = "\n".join(json.dumps(r) for r in ROWS).encode()
    r = c.post("/v1/datasets", files={"file": ("count.jsonl", io.BytesIO(data), "application/jsonl")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def create(c, ds, hp=None, **extra):
    r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": ds, "method": "sft",
                                          "hyperparameters": hp or LONG, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def poll(c, job_id, predicate, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.get(f"/v1/training_jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting on {job_id}: {job}")


def events(c, job_id):
    return c.get(f"/v1/training_jobs/{job_id}/events", params={"limit": 100}).json()["data"]


def runner_pids(job_id: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if f"jobs/{job_id}/".encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(**env):
        s = ServeProcess(tmp_path / "data", env={k: str(v) for k, v in env.items()},
                         port=servers[0].port if servers else None)
        (tmp_path / "data").mkdir(exist_ok=True)
        servers.append(s)
        return s.start()

    yield start
    for s in servers:
        s.kill()
    for d in Path("/proc").iterdir():  # never leave a runner behind
        if d.name.isdigit():
            try:
                if str(tmp_path).encode() in (d / "cmdline").read_bytes():
                    os.kill(int(d.name), signal.SIGKILL)
            except OSError:
                pass


def test_cancel_running_job_keeps_its_last_checkpoint(serve):
    srv = serve()
    with srv.client() as c:
        job_id = create(c, upload(c))
        poll(c, job_id, lambda j: j["current_step"] >= 4)
        r = c.post(f"/v1/training_jobs/{job_id}/cancel")  # no body, as the clients send it
        assert r.status_code == 200 and r.json()["cancel_requested"] is True
        job = poll(c, job_id, lambda j: j["status"] in ("completed", "failed", "cancelled"), 120)
        assert job["status"] == "cancelled" and job["current_step"] < 400
        saved = [e for e in events(c, job_id) if e["type"] == "checkpoint.saved"]
        assert saved and saved[-1]["data"]["step"] >= 3
        assert "data: [Job cancelled]" in c.get(f"/v1/training_jobs/{job_id}/logs").text
        assert not runner_pids(job_id)


def test_heartbeat_timeout_cancels_the_job(serve):
    srv = serve(TUNEYARD_HEARTBEAT_TIMEOUT_SECONDS=4)
    with srv.client() as c:
        job_id = create(c, upload(c), requires_heartbeat=True)
        assert c.post(f"/v1/training_jobs/{job_id}/heartbeat").status_code == 200
        job = poll(c, job_id, lambda j: j["status"] in ("completed", "failed", "cancelled"), 180)
        assert job["status"] == "cancelled"
        assert "heartbeat.timeout" in [e["type"] for e in events(c, job_id)]


def test_server_killed_mid_run_reattaches_to_the_running_job(serve):
    srv = serve()
    with srv.client() as c:
        job_id = create(c, upload(c), hp={**LONG, "max_steps": 14})
        poll(c, job_id, lambda j: j["status"] == "running" and j["current_step"] >= 2)
    srv.kill()
    assert runner_pids(job_id), "the runner outlives the server"
    srv = serve()
    with srv.client() as c:
        job = poll(c, job_id, lambda j: j["status"] in ("completed", "failed", "cancelled"), 300)
        assert job["status"] == "completed", job
        assert job["current_step"] == 14 and job["attempt"] == 1
        assert "worker.recovered" in [e["type"] for e in events(c, job_id)]


def test_server_and_runner_killed_resumes_from_checkpoint(serve):
    srv = serve()
    with srv.client() as c:
        job_id = create(c, upload(c), hp={**LONG, "max_steps": 10})
        poll(c, job_id, lambda j: any(e["type"] == "checkpoint.saved" for e in events(c, job_id)))
    srv.kill()
    for pid in runner_pids(job_id):
        os.kill(pid, signal.SIGKILL)
    srv = serve()
    with srv.client() as c:
        job = poll(c, job_id, lambda j: j["status"] in ("completed", "failed", "cancelled"), 300)
        assert job["status"] == "completed", job
        assert job["attempt"] == 2 and job["current_step"] == 10
        requeued = [e for e in events(c, job_id) if e["type"] == "job.queued" and e["data"].get("resume_from")]
        assert requeued, "the job was requeued to resume from its checkpoint"
