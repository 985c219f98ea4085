"""Real SFT, DPO and GRPO jobs on the bundled SmolLM2-135M, end to end through the HTTP API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import wait_job

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(8)]
DPO_ROWS = [{"prompt": f"Name the number {i}.", "chosen": f"The number is {i}.", "rejected": "I won't."}
            for i in range(8)]
GRPO_ROWS = [{"prompt": f"What is {i} + {i}? Answer with a number.", "answer": str(2 * i)} for i in range(8)]
# The reward writes where it was called from: the test reads the job's events for its scores.
REWARD = b'''
import re

def _number(text):
    m = re.search(r"-?\\d+", text)
    return m.group(0) if m else None

def reward(prompts, completions, answer, **kwargs):
    # 0.25 for a wrong answer, 1.0 for the right one: any other mean means this was not what ran.
    return [1.0 if _number(c) == a else 0.25 for c, a in zip(completions, answer)]
'''
TINY = {"max_steps": 3, "batch_size": 2, "learning_rate": 5e-4, "max_length": 64, "lora_r": 4, "seed": 1}


def upload(c: httpx.Client, rows, name):
    data = "\n".join(json.dumps(r) for r in rows).encode()
    r = c.post("/v1/datasets", files={"file": (f"{name}.jsonl", io.BytesIO(data), "application/jsonl")},
               data={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def client(sqlite_server):
    with sqlite_server.client() as c:
        yield c


def download_and_load(job: dict, tmp_path: Path, c: httpx.Client):
    manifest = c.get(f"/v1/training_jobs/{job['id']}/model").json()
    names = {f["path"] for f in manifest["files"]}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= names
    out = tmp_path / job["id"]
    out.mkdir()
    for f in manifest["files"]:
        r = httpx.get(f["url"])  # no Authorization header: the URL is signed
        assert r.status_code == 200, (f["path"], r.status_code)
        (out / f["path"]).parent.mkdir(parents=True, exist_ok=True)
        (out / f["path"]).write_bytes(r.content)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneyard.modelhub import resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL).path)
    model = PeftModel.from_pretrained(base, out)
    assert model.peft_config["default"].r == 4
    tampered = manifest["files"][0]["url"].replace("signature=", "signature=0")
    assert httpx.get(tampered).status_code == 404


def test_sft_job_end_to_end(client, tmp_path):
    ds = upload(client, SFT_ROWS, "sft")
    r = client.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": ds, "method": "sft",
                                               "output_name": "sft-test", "hyperparameters": TINY})
    assert r.status_code == 201, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "completed", job
    assert job["current_step"] == 3 and job["total_steps"] == 3
    assert job["current_loss"] is not None and job["duration_seconds"] > 0
    assert job["started_at"] and job["completed_at"] and job["gpu"] == {"type": "cpu", "count": 1}
    assert job["download_url"].startswith("http")
    events = client.get(f"/v1/training_jobs/{job['id']}/events", params={"limit": 100}).json()["data"]
    types = [e["type"] for e in events]
    for expected in ("job.queued", "job.provisioning", "job.running", "metrics", "checkpoint.saved", "job.completed"):
        assert expected in types, types
    metrics = [e["data"] for e in events if e["type"] == "metrics" and "loss" in e["data"]]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    logs = client.get(f"/v1/training_jobs/{job['id']}/logs").text
    assert logs.rstrip().endswith("data: [Job completed]")
    full = client.get(f"/v1/training_jobs/{job['id']}/logs/full")
    assert full.status_code == 200 and "Job completed" in full.text
    download_and_load(job, tmp_path, client)
    models = client.get("/v1/models").json()["data"]
    assert any(m["id"] == "sft-test" and m["job_id"] == job["id"] for m in models)


def test_dpo_job_end_to_end(client, tmp_path):
    ds = upload(client, DPO_ROWS, "dpo")
    r = client.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": ds, "method": "dpo",
                                               "hyperparameters": {**TINY, "max_steps": 2, "beta": 0.1}})
    assert r.status_code == 201, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "completed", job
    download_and_load(job, tmp_path, client)


def test_grpo_job_calls_the_uploaded_reward(client, tmp_path):
    ds = upload(client, GRPO_ROWS, "grpo")
    rf = client.post("/v1/reward_functions", files={"file": ("reward_x.py", io.BytesIO(REWARD), "text/x-python")},
                     data={"name": "numeric"}).json()["id"]
    r = client.post("/v1/training_jobs", json={
        "base_model": MODEL, "dataset_id": ds, "method": "grpo", "reward_function_id": rf,
        "hyperparameters": {"max_steps": 2, "batch_size": 2, "num_generations": 2, "max_completion_length": 12,
                            "max_prompt_length": 48, "lora_r": 4, "learning_rate": 1e-4, "seed": 1}})
    assert r.status_code == 201, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "completed", job
    events = client.get(f"/v1/training_jobs/{job['id']}/events", params={"limit": 100}).json()["data"]
    rewards = [e["data"] for e in events if e["type"] == "metrics" and "reward_mean" in e["data"]]
    assert rewards, "GRPO metrics carry the reward mean"
    # The uploaded function scores 0.25 or 1.0, so its mean lies in [0.25, 1]; without it, it would be 0.
    assert all(0.25 <= m["reward_mean"] <= 1 for m in rewards), rewards
    download_and_load(job, tmp_path, client)


def test_failing_reward_fails_the_job_with_its_reason(client):
    ds = upload(client, GRPO_ROWS, "grpo-bad")
    bad = b"def reward(prompts, completions, **kwargs):\n    raise ValueError('scorer exploded')\n"
    rf = client.post("/v1/reward_functions", files={"file": ("bad.py", io.BytesIO(bad), "text/x-python")},
                     data={"name": "bad"}).json()["id"]
    r = client.post("/v1/training_jobs", json={
        "base_model": MODEL, "dataset_id": ds, "method": "grpo", "reward_function_id": rf,
        "hyperparameters": {"max_steps": 1, "batch_size": 2, "num_generations": 2, "max_completion_length": 8}})
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "failed"
    assert "scorer exploded" in job["error"]["message"]
    assert job["error"]["code"].startswith("reward_function")
    logs = client.get(f"/v1/training_jobs/{job['id']}/logs").text
    assert "data: [Job failed]" in logs
