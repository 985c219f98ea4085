"""Two stateless ``serve`` replicas and two ``worker`` processes on one Postgres database.

Every queued job runs exactly once (one claim, one runner, one attempt folder), both replicas
answer the same logs and events, and a worker killed mid-job has its run taken over after its
lease expires: the job still completes, without a second runner.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.scaling.cluster import TINY, create_job, events, poll, upload, wait_done

LEASE = "4"  # seconds: a killed worker's jobs are taken over quickly


def attempt_dirs(root: Path, job_id: str) -> list[Path]:
    return sorted(root.glob(f"worker-*/jobs/{job_id}/attempt-*"))


def test_batch_runs_exactly_once_across_replicas_and_workers(cluster):
    a, b = cluster.serve(), cluster.serve()
    workers = [cluster.worker(TUNEYARD_WORKER_LEASE_SECONDS=LEASE, TUNEYARD_CPU_JOB_SLOTS="2")
               for _ in range(2)]
    with a.client() as ca, b.client() as cb:
        ds = upload(ca)
        # Jobs created through either replica land in the same queue.
        job_ids = [create_job(ca if i % 2 else cb, ds, {**TINY, "seed": i}) for i in range(3)]
        done = [wait_done(ca, j) for j in job_ids]
        assert [j["status"] for j in done] == ["completed"] * 3, done

        claimed_by = set()
        for job_id in job_ids:
            evs = events(ca, job_id)
            types = [e["type"] for e in evs]
            assert types.count("job.provisioning") == 1, types
            assert types.count("runner.started") == 1, types
            assert types.count("job.completed") == 1, types
            assert "worker.recovered" not in types
            assert len(attempt_dirs(cluster.root, job_id)) == 1
            claimed_by.add(next(e["data"]["worker"] for e in evs if e["type"] == "job.provisioning"))
            # Both replicas read the same events and the same log, line for line.
            assert events(cb, job_id) == evs
            log_a = ca.get(f"/v1/training_jobs/{job_id}/logs/full").text
            assert log_a == cb.get(f"/v1/training_jobs/{job_id}/logs/full").text
            assert "Job completed" in log_a
            job_a, job_b = ca.get(f"/v1/training_jobs/{job_id}").json(), cb.get(f"/v1/training_jobs/{job_id}").json()
            url_a = job_a.pop("download_url")  # each replica links to itself; the rest is identical
            assert url_a.startswith(a.url) and job_b.pop("download_url").startswith(b.url)
            assert job_a == job_b
            # A link signed by one replica downloads from the other (they share the master key).
            assert httpx.get(url_a.replace(a.url, b.url)).status_code == 200
        assert {w.split(":")[1] for w in claimed_by} <= {str(w.pid) for w in workers}
        listed_a = {j["id"] for j in ca.get("/v1/training_jobs", params={"limit": 10}).json()["data"]}
        assert listed_a == {j["id"] for j in cb.get("/v1/training_jobs", params={"limit": 10}).json()["data"]}
        assert set(job_ids) <= listed_a


def test_killed_worker_is_taken_over_after_its_lease(cluster):
    srv = cluster.serve()
    first = cluster.worker(TUNEYARD_WORKER_LEASE_SECONDS=LEASE)
    with srv.client() as c:
        ds = upload(c)
        job_id = create_job(c, ds, {**TINY, "max_steps": 6})
        poll(c, job_id, lambda j: j["status"] == "running" and j["current_step"] >= 1)
        # Only now does a second worker join: the job is certainly the first worker's.
        second = cluster.worker(TUNEYARD_WORKER_LEASE_SECONDS=LEASE)
        first.kill()
        job = wait_done(c, job_id)
        assert job["status"] == "completed", job
        assert job["current_step"] == 6
        evs = events(c, job_id)
        types = [e["type"] for e in evs]
        recovered = [e for e in evs if e["type"] == "worker.recovered"]
        assert len(recovered) == 1, types
        assert recovered[0]["data"]["previous_worker"].split(":")[1] == str(first.pid)
        assert f":{second.pid}:" in recovered[0]["message"]
        # The runner the dead worker started carried on; nobody started another.
        assert types.count("runner.started") == 1 and types.count("job.provisioning") == 1, types
        assert len(attempt_dirs(cluster.root, job_id)) == 1
        metrics = [e["data"]["step"] for e in evs if e["type"] == "metrics" and "loss" in e["data"]]
        assert metrics == [1, 2, 3, 4, 5, 6], metrics  # no step relayed twice or lost in the takeover
        assert c.get(f"/v1/training_jobs/{job_id}/logs").text.rstrip().endswith("data: [Job completed]")
