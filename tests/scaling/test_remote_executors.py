"""Blobs in S3 (moto) and runners away from tuneyard: a Ray cluster (Jobs API) and an SSH host.

The same tiny SFT job runs on the local executor first (the reference); on Ray and over SSH it must
train, stream its logs, survive a worker restart (re-attach, no second run), cancel gracefully, and
produce the same checkpoint files (names and tensor shapes) as the local run.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaling.cluster import (
    S3,
    S3_ENV,
    TINY,
    Cluster,
    checkpoint_shapes,
    create_job,
    download_checkpoint,
    events,
    new_ssh_key_pair,
    poll,
    upload,
    wait_done,
)

LONG = {**TINY, "max_steps": 200, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pg_database, s3_server) -> Iterator[dict]:
    """The tiny SFT job on the local executor with blobs in S3: its checkpoint (file names, tensor shapes)
    and what the round trip looked like (bucket keys, the model manifest, the dataset preview)."""
    old = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    root = tmp_path_factory.mktemp("reference")
    s3 = S3(s3_server, f"ref-{uuid.uuid4().hex[:8]}")
    s3.client().create_bucket(Bucket=s3.bucket)
    cluster = Cluster(root, {"TUNEYARD_DATABASE_URL": pg_database, **s3.env})
    try:
        srv = cluster.serve()
        cluster.worker()
        with srv.client() as c:
            ds = upload(c)
            dataset_keys = s3.keys("tuneyard/orgs/")
            preview = c.get(f"/v1/datasets/{ds}").json().get("preview")
            job = wait_done(c, create_job(c, ds))
            result = {"job": job, "dataset_id": ds, "dataset_keys": dataset_keys, "preview": preview,
                      "keys": s3.keys("tuneyard/orgs/"), "s3": s3, "root": root}
            if job["status"] == "completed":
                result["manifest"] = c.get(f"/v1/training_jobs/{job['id']}/model").json()
                result.update(signature(c, job["id"], root / "download"))
    finally:
        cluster.close()  # its worker must not claim the other tests' jobs (same database)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield result


def test_local_executor_round_trip_through_s3(reference):
    """Dataset upload -> SFT job on a worker -> download through presigned S3 links, all blobs in the bucket."""
    s3, job = reference["s3"], reference["job"]
    assert job["status"] == "completed", job
    [dataset_key] = reference["dataset_keys"]
    assert dataset_key.endswith(f"/datasets/{reference['dataset_id']}.jsonl")
    assert reference["preview"][0]["messages"][0]["content"] == "What is 0 plus 0?"  # read back from S3
    assert any(k.endswith(f"/jobs/{job['id']}/checkpoints/final/adapter_model.safetensors")
               for k in reference["keys"])
    # Download links are presigned S3 URLs: the bytes come from the bucket, without tuneyard's auth.
    for f in reference["manifest"]["files"]:
        assert f["url"].startswith(f"{s3.endpoint}/{s3.bucket}/tuneyard/orgs/"), f["url"]
        assert "X-Amz-Signature=" in f["url"] and "X-Amz-Expires=3600" in f["url"]
    # (moto does not check signatures, so a tampered link is not tested here; S3 and MinIO refuse one.)
    assert job["download_url"].startswith(s3.endpoint) and "adapter_model.safetensors" in job["download_url"]
    assert {"adapter_model.safetensors", "adapter_config.json", "tuneyard.json"} <= set(reference["files"])
    assert reference["shapes"] and all(4 in shape for shape in reference["shapes"].values())  # lora_r=4
    # Nothing went to a local blob folder.
    assert not list(reference["root"].glob("*/blobs/orgs")) and not (reference["root"] / "shared-blobs").exists()


def signature(c, job_id: str, dest: Path) -> dict:
    files = download_checkpoint(c, job_id, dest)
    return {"files": sorted(files), "shapes": checkpoint_shapes(dest)}


def assert_same_checkpoint(got: dict, reference: dict) -> None:
    assert "files" in reference, "the reference run on the local executor failed"
    assert got["files"] == reference["files"]
    assert got["shapes"] == reference["shapes"]


def test_ray_executor_end_to_end(cluster, s3, ray_head, reference, tmp_path):
    cluster.env.update({**s3.env, "TUNEYARD_EXECUTOR": "ray", "TUNEYARD_RAY_ADDRESS": ray_head.address,
                        "TUNEYARD_RAY_PYTHON": sys.executable,
                        "TUNEYARD_RAY_SCRATCH_DIR": str(cluster.root / "ray-scratch")})
    srv = cluster.serve()
    worker = cluster.worker()
    with srv.client() as c:
        ds = upload(c)
        job_id = create_job(c, ds)
        waiting = create_job(c, ds, LONG)
        poll(c, job_id, lambda j: j["status"] == "running")
        # The head has one CPU: tuneyard keeps the second job queued instead of piling it onto Ray.
        assert c.get(f"/v1/training_jobs/{waiting}").json()["status"] == "queued"
        job = wait_done(c, job_id)
        assert job["status"] == "completed", job
        [ray_job] = ray_head.jobs_of(job_id)
        assert ray_job.status == "SUCCEEDED" and "tuneyard.training" in ray_job.entrypoint
        types = [e["type"] for e in events(c, job_id)]
        assert types.count("runner.started") == 1 and "checkpoint.saved" in types
        log = c.get(f"/v1/training_jobs/{job_id}/logs/full").text
        assert "step 2/2" in log and "Job completed" in log
        assert "Runtime env is setting up" not in log  # Ray's own chatter is not the job's log
        assert_same_checkpoint(signature(c, job_id, tmp_path / "ray"), reference)

        # A restarted worker re-attaches to the running Ray job: no second submission.
        poll(c, waiting, lambda j: j["status"] == "running" and j["current_step"] >= 2)
        worker.kill()
        cluster.worker()
        step = c.get(f"/v1/training_jobs/{waiting}").json()["current_step"]
        poll(c, waiting, lambda j: j["current_step"] > step + 1)
        assert c.post(f"/v1/training_jobs/{waiting}/cancel").status_code == 200
        job = wait_done(c, waiting)
        assert job["status"] == "cancelled", job
        [ray_job] = ray_head.jobs_of(waiting)
        assert ray_job.status == "STOPPED"
        evs = events(c, waiting)
        types = [e["type"] for e in evs]
        assert types.count("runner.started") == 1 and types.count("worker.recovered") == 1, types
        saved = [e["data"]["step"] for e in evs if e["type"] == "checkpoint.saved"]
        assert saved and saved[-1] >= job["current_step"] - 1
        assert "data: [Job cancelled]" in c.get(f"/v1/training_jobs/{waiting}/logs").text


def test_ssh_executor_end_to_end(cluster, s3, sshd, reference, tmp_path):
    cluster.env.update(s3.env)
    srv = cluster.serve()
    with srv.client() as c:
        # The key the hosts trust is uploaded through the API; tuneyard keeps it encrypted.
        private, public = new_ssh_key_pair()
        r = c.post("/v1/ssh_keys", json={"name": "gpu-hosts", "public_key": public, "private_key": private})
        assert r.status_code == 201, r.text
        key = r.json()
        assert "private_key" not in key and "PRIVATE KEY" not in r.text
        sshd.authorized_keys.write_text(public + "\n")
        host_dir = cluster.root / "ssh-host"
        cluster.env.update({
            "TUNEYARD_EXECUTOR": "ssh", "TUNEYARD_SSH_RUNNER_DIR": str(host_dir),
            "TUNEYARD_SSH_HOSTS": json.dumps([{
                "host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "ssh_key": key["id"],
                "gpus": {"cpu": 1}, "python": sys.executable, "known_hosts": sshd.host_key}])})
        worker = cluster.worker()

        ds = upload(c)
        job_id = create_job(c, ds)
        job = wait_done(c, job_id)
        assert job["status"] == "completed", job
        run = host_dir / "runs" / job_id / "attempt-1"
        assert (run / "exit_code").read_text().strip() == "0"
        assert not (run / "env.sh").exists()  # the storage credentials do not stay on the host
        types = [e["type"] for e in events(c, job_id)]
        assert types.count("runner.started") == 1 and "checkpoint.saved" in types
        log = c.get(f"/v1/training_jobs/{job_id}/logs/full").text
        assert "step 2/2" in log and "Job completed" in log
        assert_same_checkpoint(signature(c, job_id, tmp_path / "ssh"), reference)

        # A restarted worker re-attaches to the runner on the host; then a cancel stops it gracefully.
        long_id = create_job(c, ds, LONG)
        poll(c, long_id, lambda j: j["status"] == "running" and j["current_step"] >= 2)
        worker.kill()
        cluster.worker()
        step = c.get(f"/v1/training_jobs/{long_id}").json()["current_step"]
        poll(c, long_id, lambda j: j["current_step"] > step + 1)
        assert c.post(f"/v1/training_jobs/{long_id}/cancel").status_code == 200
        job = wait_done(c, long_id)
        assert job["status"] == "cancelled", job
        assert [p.name for p in (host_dir / "runs" / long_id).iterdir()] == ["attempt-1"]
        assert (host_dir / "runs" / long_id / "attempt-1" / "exit_code").read_text().strip() == "0"
        evs = events(c, long_id)
        types = [e["type"] for e in evs]
        assert types.count("runner.started") == 1 and types.count("worker.recovered") == 1, types
        assert "data: [Job cancelled]" in c.get(f"/v1/training_jobs/{long_id}/logs").text
