"""Deployments on remote capacity: the deployment supervisor (in a `tuneyard worker`) places the worker of a
deployment on a Ray cluster (a Ray job) or an SSH host (a detached process), the gateway of a separate
`serve` replica forwards to it, a worker that is killed turns the deployment `unhealthy` and is started
again, and stopping the deployment ends the remote process.

The bundled base model (no training), one deployment per executor, a few tokens per request; and a
fine-tune on the SSH host, its LoRA adapter fetched by the remote worker from the bucket (S3, moto).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.deploy_helpers import TINY_SFT, poll, train_lora, wait_deployment, wait_job
from tests.scaling.cluster import MODEL, S3, Cluster, new_ssh_key_pair

GPU = {"type": "cpu", "count": 1}
# One torch thread per worker (2 shared cores), frequent health checks, no orphan exit during the test.
FAST = {"TUNEYARD_INFERENCE_THREADS": "1", "TUNEYARD_DEPLOYMENT_HEALTH_INTERVAL_SECONDS": "1",
        "TUNEYARD_DEPLOYMENT_ORPHAN_TIMEOUT_SECONDS": "300"}


def worker_processes(marker: str) -> dict[int, list[str]]:
    """pid -> argv of the deployment worker interpreters whose command line mentions ``marker``."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv[1:3] == ["-m", "tuneyard.inference.worker"] and any(marker in a for a in argv):
            found[int(d.name)] = argv
    return found


def chat(srv, dep: dict) -> str:
    client = openai.OpenAI(base_url=dep["endpoint_url"].removesuffix("/chat/completions"), api_key=srv.key,
                           timeout=120, max_retries=0)
    answer = client.chat.completions.create(model=dep["name"], max_tokens=4,
                                            messages=[{"role": "user", "content": "Say hi"}])
    assert answer.choices[0].message.content, answer
    assert answer.usage.completion_tokens <= 4
    return answer.model


def events(c: httpx.Client, dep_id: str) -> list[dict]:
    return c.get(f"/v1/deployments/{dep_id}/events").json()["data"]


def serve_kill_restart_stop(c: httpx.Client, srv, name: str, placement: str) -> tuple[dict, list[int]]:
    """Deploy, chat, kill the worker, see it come back, chat, stop; returns (deployment, worker pids)."""
    r = c.post("/v1/deployments", json={"model": MODEL, "name": name, "gpu": GPU})
    assert r.status_code == 201, r.text
    dep = wait_deployment(c, r.json()["id"], timeout=300)
    assert dep["status"] == "serving", (dep, events(c, dep["id"]))
    started = [e for e in events(c, dep["id"]) if e["type"] == "worker.started"]
    assert started[-1]["data"]["placement"] == placement, started
    assert chat(srv, dep)

    # The worker listens on the network, so it takes requests from the gateway only (a bearer token).
    [serving] = [e for e in events(c, dep["id"]) if e["type"] == "deployment.serving"]
    direct = httpx.post(serving["data"]["worker_url"] + "/v1/chat/completions", timeout=10,
                        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    assert direct.status_code == 401 and direct.json()["error"]["code"] == "invalid_worker_token", direct.text

    [pid] = worker_processes(name)
    os.kill(pid, signal.SIGKILL)  # the remote worker dies
    seen = set()

    def status():
        d = c.get(f"/v1/deployments/{dep['id']}").json()
        seen.add(d["status"])
        return d

    back = poll(status, lambda d: d["status"] == "serving" and d["restarts"] == 1, timeout=240, interval=0.5)
    types = [e["type"] for e in events(c, dep["id"])]
    after_kill = types[types.index("deployment.serving") + 1:]
    assert after_kill[:3] == ["deployment.unhealthy", "deployment.provisioning", "worker.started"], types
    assert after_kill[-1] == "deployment.serving" and seen & {"unhealthy", "provisioning"}, (types, seen)
    [pid2] = worker_processes(name)
    assert pid2 != pid
    assert chat(srv, back)

    assert c.post(f"/v1/deployments/{dep['id']}/stop").status_code == 200
    poll(lambda: worker_processes(name), lambda pids: not pids, timeout=60)
    poll(lambda: [e["type"] for e in events(c, dep["id"])], lambda t: "worker.stopped" in t, timeout=30)
    return back, [pid, pid2]


def test_deployment_on_ray(cluster: Cluster, ray_head):
    cluster.env.update({"TUNEYARD_EXECUTOR": "ray", "TUNEYARD_RAY_ADDRESS": ray_head.address,
                        "TUNEYARD_RAY_PYTHON": sys.executable,
                        "TUNEYARD_RAY_SCRATCH_DIR": str(cluster.root / "ray-scratch"), **FAST})
    srv = cluster.serve()
    cluster.worker()
    name = f"ray-dep-{int(time.time())}"
    with srv.client() as c:
        dep, _ = serve_kill_restart_stop(c, srv, name, "ray")
    def ray_jobs():
        return [j for j in ray_head.client().list_jobs() if (j.metadata or {}).get("tuneyard_deployment") == dep["id"]]

    # One Ray job per worker start: the killed one, then the stopped one (Ray records the stop a moment
    # after the process is gone).
    jobs = poll(ray_jobs, lambda js: sorted(str(j.status) for j in js) == ["FAILED", "STOPPED"], timeout=30)
    assert all("tuneyard.inference.worker" in j.entrypoint for j in jobs)
    assert all("TUNEYARD_WORKER_TOKEN" not in j.entrypoint for j in jobs)


def ssh_host(c: httpx.Client, cluster: Cluster, sshd) -> Path:
    """Upload a key the loopback sshd trusts and point the (not yet started) worker's executor at it; returns
    the runner folder on the host."""
    private, public = new_ssh_key_pair()
    r = c.post("/v1/ssh_keys", json={"name": "serving-hosts", "public_key": public, "private_key": private})
    assert r.status_code == 201, r.text
    sshd.authorized_keys.write_text(public + "\n")
    host_dir = cluster.root / "ssh-host"
    cluster.env.update({
        "TUNEYARD_EXECUTOR": "ssh", "TUNEYARD_SSH_RUNNER_DIR": str(host_dir),
        "TUNEYARD_SSH_HOSTS": json.dumps([{
            "host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "ssh_key": r.json()["id"],
            "gpus": {"cpu": 1}, "python": sys.executable, "known_hosts": sshd.host_key}])})
    return host_dir


def test_deployment_on_ssh_host(cluster: Cluster, sshd):
    cluster.env.update(FAST)
    srv = cluster.serve()
    with srv.client() as c:
        host_dir = ssh_host(c, cluster, sshd)
        cluster.worker()
        name = f"ssh-dep-{int(time.time())}"
        dep, pids = serve_kill_restart_stop(c, srv, name, "ssh")
    run = host_dir / "deployments" / dep["id"]
    assert int((run / "pid").read_text()) == pids[1]
    code = poll(lambda: (run / "exit_code").is_file() and (run / "exit_code").read_text().strip(), bool, timeout=15)
    assert code in ("0", "143"), code  # SIGTERM: a clean shutdown
    assert not (run / "env.sh").exists()  # the token and storage credentials do not stay on the host
    assert "engine ready" in (run / "worker.log").read_text()



def test_fine_tune_on_ssh_host(cluster: Cluster, s3: S3, sshd):
    """A LoRA fine-tune deployed on the SSH host: the supervisor names its checkpoint by blob URL, the remote
    worker fetches the adapter from the bucket into its run folder, loads it on the base model, serves it."""
    cluster.env.update({**FAST, **s3.env})
    srv = cluster.serve()
    with srv.client() as c:
        host_dir = ssh_host(c, cluster, sshd)
        cluster.worker()
        job = train_lora(c, output_name=f"ssh-ft-{int(time.time())}")  # trained on the host too, published to S3
        r = c.post("/v1/deployments", json={"model": job["id"], "gpu": GPU})
        assert r.status_code == 201, r.text
        dep = wait_deployment(c, r.json()["id"], timeout=120)
        assert dep["status"] == "serving", (dep, events(c, dep["id"]))
        [started] = [e for e in events(c, dep["id"]) if e["type"] == "worker.started"]
        assert started["data"]["placement"] == "ssh", started

        # The worker got the adapter as an s3:// URL (no local path of this machine) and fetched it itself.
        [argv] = worker_processes(dep["id"]).values()
        adapter = argv[argv.index("--adapter") + 1]
        assert adapter.startswith(f"{dep['id']}=s3://{s3.bucket}/tuneyard/") and adapter.endswith("/"), argv
        fetched = host_dir / "deployments" / dep["id"] / "adapters" / dep["id"]
        assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in fetched.iterdir()}

        assert chat(srv, dep) == dep["name"]
        # The engine block of /metrics is the worker's stats as of the last health probe (one after the chat).
        metrics = poll(lambda: c.get(f"/v1/deployments/{dep['id']}/metrics").json(),
                       lambda m: m["engine"].get("requests", 0) >= 1, timeout=15)
        assert metrics["engine"]["adapters"] == [dep["id"]], metrics
        assert not (cluster.root / "shared-blobs").exists()  # every blob went to the bucket

        # The host's one CPU unit is the deployment's: a new training job waits in tuneyard's queue
        # instead of being started on the busy host, and runs once the deployment stops.
        r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": job["dataset_id"], "method": "sft",
                                              "hyperparameters": TINY_SFT})
        assert r.status_code == 201, r.text
        waiting = r.json()["id"]
        time.sleep(3)  # several scheduler ticks (0.5 s each)
        assert c.get(f"/v1/training_jobs/{waiting}").json()["status"] == "queued"

        assert c.post(f"/v1/deployments/{dep['id']}/stop").status_code == 200
        poll(lambda: worker_processes(dep["id"]), lambda pids: not pids, timeout=60)
        poll(lambda: [e["type"] for e in events(c, dep["id"])], lambda t: "worker.stopped" in t, timeout=30)
        assert wait_job(c, waiting, timeout=300)["status"] == "completed"
