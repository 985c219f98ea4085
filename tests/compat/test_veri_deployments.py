"""The official veri CLI 0.2.10 drives a deployment of a real LoRA fine-tune:
`deployments create|list|get|chat|requests|metrics|stop`."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.deploy_helpers import SERVER_SETTINGS, poll, stop_all, train_lora, wait_deployment  # noqa: F401


@pytest.fixture(scope="module")
def server(sqlite_server):
    """Deployments need the server with its scheduler and supervisor."""
    yield sqlite_server
    with sqlite_server.client() as c:
        stop_all(c, sqlite_server.ctx.settings.data_dir)


@pytest.fixture(scope="module")
def job(server):
    with server.client() as c:
        return train_lora(c, "veri-lora")


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def as_json(proc):
    return json.loads(ok(proc))


def test_veri_deployments_lifecycle(server, run_veri, job):
    dep_id = ok(run_veri("0.2.10", "deployments", "create", "--model", job["id"], "--name", "veri-dep",
                         "--gpu-type", "cpu", "--gpu-count", "1", "-q")).strip()
    assert dep_id.startswith("dep_")
    with server.client() as c:
        dep = wait_deployment(c, dep_id)
    assert dep["status"] == "serving", dep

    listed = as_json(run_veri("0.2.10", "deployments", "list", "--status", "serving", "-o", "json"))
    assert [d["id"] for d in listed] == [dep_id] and listed[0]["name"] == "veri-dep"
    got = as_json(run_veri("0.2.10", "deployments", "get", dep_id, "-o", "json"))
    assert got["status"] == "serving" and got["model"] == job["id"] and got["source"] == "training_job"
    assert got["endpoint_url"].endswith(f"/v1/deployments/{dep_id}/chat/completions")
    assert got["gpu"] == {"type": "cpu", "count": 1}

    # `chat` looks the deployment up for its name, then prints choices[0].message.content.
    answer = ok(run_veri("0.2.10", "deployments", "chat", dep_id, "-m", "What is 2 plus 2?", "--max-tokens", "8",
                         "--temperature", "0"))
    assert answer.strip()
    payload = as_json(run_veri("0.2.10", "deployments", "chat", dep_id, "-m", "Hi", "--max-tokens", "4",
                               "-o", "json"))
    assert payload["object"] == "chat.completion" and payload["model"] == "veri-dep"
    assert payload["usage"]["completion_tokens"] <= 4

    with server.client() as c:
        poll(lambda: c.get(f"/v1/deployments/{dep_id}/requests").json()["data"], lambda d: len(d) >= 2)
    rows = as_json(run_veri("0.2.10", "deployments", "requests", dep_id, "--limit", "5", "-o", "json"))
    assert len(rows) == 2 and all(r["status_code"] == 200 and r["latency_ms"] > 0 for r in rows)
    metrics = as_json(run_veri("0.2.10", "deployments", "metrics", dep_id, "-o", "json"))
    assert metrics["requests"]["lifetime"] == 2 and metrics["latency_ms"]["p50"] > 0
    assert metrics["engine"]["adapters"] == [dep_id]

    out = ok(run_veri("0.2.10", "deployments", "stop", dep_id))
    assert f"Stopped {dep_id}" in out
    got = as_json(run_veri("0.2.10", "deployments", "get", dep_id, "-o", "json"))
    assert got["status"] == "stopped" and not got["endpoint_url"]
    refused = run_veri("0.2.10", "deployments", "chat", dep_id, "-m", "Hi")
    assert refused.returncode != 0 and "stopped" in (refused.stdout + refused.stderr)
