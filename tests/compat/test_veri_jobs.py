"""The official veri CLI drives real training jobs: 0.2.10 `jobs create|list|get|cancel|download`
and `veri train` (which streams the logs), 0.2.33 `jobs logs -f` and `jobs download` via /model."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"Spell {i}."}, {"role": "assistant", "content": f"{i}!"}]}
            for i in range(8)]


@pytest.fixture(scope="module")
def server(sqlite_server):
    """These tests need jobs to really run: the server with its scheduler."""
    return sqlite_server


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def as_json(proc):
    return json.loads(ok(proc))


def wait_status(client, job_id, statuses, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/training_jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(1)
    raise AssertionError(f"{job_id} never reached {statuses}: {job}")


@pytest.fixture
def sft_dataset(tmp_path, run_veri):
    path = tmp_path / "sft.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in SFT_ROWS) + "\n")
    return as_json(run_veri("0.2.10", "datasets", "upload", str(path), "--name", "veri-sft", "-o", "json"))["id"]


def test_jobs_create_list_get_download_and_cancel(server, run_veri, sft_dataset, tmp_path):
    args = ["jobs", "create", "--base-model", MODEL, "--dataset", sft_dataset, "--gpu-type", "cpu",
            "--gpu-count", "1", "--set", "method.type=sft", "--set", "method.max_steps=2",
            "--set", "method.lora_rank=4", "--set", "method.max_length=48", "--set", "job.output_model=veri-sft-out",
            "--set", "checkpoint.destination=veri"]
    job_id = ok(run_veri("0.2.10", *args, "-q")).strip()
    assert job_id.startswith("job_")
    listed = as_json(run_veri("0.2.10", "jobs", "list", "--method", "sft", "-o", "json"))
    assert job_id in [j["id"] for j in listed]
    with server.client() as c:
        wait_status(c, job_id, {"completed", "failed", "cancelled"})
    got = as_json(run_veri("0.2.10", "jobs", "get", job_id, "-o", "json"))
    assert got["status"] == "completed" and got["download_url"].startswith("http")
    out = tmp_path / "dl"
    ok(run_veri("0.2.10", "jobs", "download", job_id, "--output-dir", str(out)))
    weights = out / job_id / "model.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(weights)  # 0.2.10 saves the adapter weights under this name
    assert any("lora_A" in k for k in tensors)

    # 0.2.33 downloads every file of the manifest at /model
    out33 = tmp_path / "dl33"
    ok(run_veri("0.2.33", "jobs", "download", job_id, "--output-dir", str(out33)))
    assert (out33 / job_id / "adapter_config.json").is_file()
    assert (out33 / job_id / "adapter_model.safetensors").is_file()

    # cancel: a second job, cancelled while it waits or runs
    long_args = [a if a != "method.max_steps=2" else "method.max_steps=500" for a in args]
    second = ok(run_veri("0.2.10", *long_args, "-q")).strip()
    ok(run_veri("0.2.10", "jobs", "cancel", second))
    with server.client() as c:
        assert wait_status(c, second, {"completed", "failed", "cancelled"})["status"] == "cancelled"


def test_jobs_logs_follow_streams_until_the_end(server, run_veri, sft_dataset):
    with server.client() as c:
        r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": sft_dataset, "method": "sft",
                                              "hyperparameters": {"max_steps": 3, "lora_r": 4, "max_length": 48}})
        job_id = r.json()["id"]
        wait_status(c, job_id, {"running", "completed", "failed"})
    out = ok(run_veri("0.2.33", "jobs", "logs", job_id, "-f", timeout=300))
    assert "Training started" in out or "step" in out
    assert "[Job completed]" in out
    # a finished job: the whole log comes from /logs/full
    again = ok(run_veri("0.2.33", "jobs", "logs", job_id))
    assert "Job completed" in again


def test_veri_train_script(server, run_veri, tmp_path):
    rows = [{"prompt": f"What is {i}+1?", "answer": str(i + 1)} for i in range(6)]
    data = tmp_path / "grpo.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds_id = as_json(run_veri("0.2.10", "datasets", "upload", str(data), "--name", "grpo-mini", "-o", "json"))["id"]
    script = tmp_path / "train_script.py"
    script.write_text(f'''
from veri_sdk import training_job


@training_job(base_model="{MODEL}", dataset="{ds_id}", gpu_type="cpu", gpu_count=1, method="grpo",
              hyperparameters={{"max_steps": 1, "rollouts_per_prompt": 2, "batch_size": 2,
                                "max_response_length": 8, "lora_rank": 4}})
def reward(prompts, completions, answer, **kwargs):
    return [1.0 if a in c else 0.5 for c, a in zip(completions, answer)]
''')
    proc = run_veri("0.2.10", "train", str(script), timeout=400)
    out = ok(proc) + proc.stderr
    assert "[worker]" in out, out  # the streamed log lines
    with server.client() as c:
        jobs = c.get("/v1/training_jobs", params={"method": "grpo"}).json()["data"]
        job = next(j for j in jobs if j["dataset_id"] == ds_id)
        assert job["status"] == "completed", job
        rf = c.get(f"/v1/reward_functions/{job['reward_function_id']}").json()
        assert "training_job" not in rf["source"] and "def reward" in rf["source"]
