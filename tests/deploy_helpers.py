"""Helpers shared by the deployment tests: a tiny real LoRA SFT job, waiting on deployments, and
leaving no worker process behind."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import httpx

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(8)]
TINY_SFT = {"max_steps": 1, "batch_size": 2, "learning_rate": 5e-4, "max_length": 48, "lora_r": 4, "seed": 1}
SETTLED = ("serving", "failed", "stopped")
# Deployment tests share a 2-core machine: one torch thread per worker, frequent health checks.
SERVER_SETTINGS = {"inference_threads": 1, "deployment_health_interval_seconds": 1.0,
                   "deployment_orphan_timeout_seconds": 300}


def train_lora(c: httpx.Client, output_name: str = "dep-test") -> dict:
    data = "\n".join(json.dumps(r) for r in SFT_ROWS).encode()
    r = c.post("/v1/datasets", files={"file": ("sft.jsonl", io.BytesIO(data), "application/jsonl")},
               data={"name": "dep-sft"})
    assert r.status_code == 201, r.text
    r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": r.json()["id"], "method": "sft",
                                          "output_name": output_name, "hyperparameters": TINY_SFT})
    assert r.status_code == 201, r.text
    job = wait_job(c, r.json()["id"])
    assert job["status"] == "completed", job
    return job


def wait_job(c: httpx.Client, job_id: str, timeout: float = 600) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.get(f"/v1/training_jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def wait_deployment(c: httpx.Client, dep_id: str, statuses=SETTLED, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        dep = c.get(f"/v1/deployments/{dep_id}").json()
        if dep["status"] in statuses:
            return dep
        time.sleep(0.5)
    events = c.get(f"/v1/deployments/{dep_id}/events").json()
    raise AssertionError(f"deployment {dep_id} never reached {statuses}: {dep}\n{events}")


def poll(fn, predicate, timeout: float = 60, interval: float = 0.3):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if predicate(value):
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out; last value: {value}")
        time.sleep(interval)


def worker_pids(marker: str) -> list[int]:
    """Deployment worker processes whose command line mentions ``marker`` (a data dir or a dep id)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"tuneyard.inference.worker" in cmd and marker.encode() in cmd:
                pids.append(int(d.name))
    return pids


def stop_all(c: httpx.Client, data_dir: Path, timeout: float = 30) -> None:
    """Stop every active deployment, wait for the supervisor to end their workers, kill stragglers."""
    for status in ("queued", "provisioning", "serving", "unhealthy"):
        for dep in c.get("/v1/deployments", params={"status": status, "limit": 100}).json().get("data", []):
            c.post(f"/v1/deployments/{dep['id']}/stop")
    deadline = time.time() + timeout
    while worker_pids(str(data_dir)) and time.time() < deadline:
        time.sleep(0.3)
    for pid in worker_pids(str(data_dir)):
        os.kill(pid, signal.SIGKILL)


def kill_workers(marker: str) -> None:
    """SIGKILL deployment workers left behind (a server stopped without stopping its deployments leaves
    them to their 600 s orphan timeout; on-demand /api/v1 models are such deployments)."""
    for pid in worker_pids(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
