"""Two stateless ``serve`` replicas and two ``worker`` processes on one Postgres database.

Every queued job runs exactly once (one claim, one runner, one attempt folder), both replicas
answer the same jobs, logs and events, and a worker killed mid-job has its work taken over after its
lease: the job still completes, without a second runner and without a step relayed twice.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.scaling.cluster import TINY, create_job, events, poll, upload, wait_done

LEASE = "4"  # seconds: a killed worker's jobs are taken over quickly


def attempt_dirs(root: Path, job_id: str) -> list[Path]:
    return sorted(root.glob(f"worker-*/jobs/{job_id}/attempt-*"))


def holder(c: httpx.Client, job_id: str) -> str:
    """The pid of the worker that claimed the job."""
    evs = events(c, job_id)
    return next(e["data"]["worker"] for e in evs if e["type"] == "job.provisioning").split(":")[1]


def test_jobs_run_exactly_once_across_replicas_and_workers_even_when_one_dies(cluster):
    a, b = cluster.serve(), cluster.serve()
    workers = {str(w.pid): w for w in
               (cluster.worker(TUNEYARD_WORKER_LEASE_SECONDS=LEASE, TUNEYARD_CPU_JOB_SLOTS="2") for _ in range(2))}
    with a.client() as ca, b.client() as cb:
        ds = upload(ca)
        # Jobs created through either replica land in the same queue; the first one runs longer.
        long_id = create_job(ca, ds, {**TINY, "max_steps": 6})
        short_ids = [create_job(cb if i % 2 else ca, ds, {**TINY, "seed": i}) for i in range(2)]
        poll(ca, long_id, lambda j: j["status"] == "running" and j["current_step"] >= 1)
        victim = holder(ca, long_id)
        workers[victim].kill()

        done = {j: wait_done(cb, j) for j in [long_id, *short_ids]}
        assert [d["status"] for d in done.values()] == ["completed"] * 3, done
        assert done[long_id]["current_step"] == 6

        for job_id in done:
            evs = events(ca, job_id)
            types = [e["type"] for e in evs]
            # One runner, started once, in one folder: nothing ran twice. (A claim counts twice only when
            # its worker died before starting the runner, which requeues the job.)
            requeued = sum(1 for e in evs if e["type"] == "job.queued" and "Requeued" in e["message"])
            assert types.count("job.provisioning") == 1 + requeued, types
            assert types.count("runner.started") == 1, types
            assert types.count("job.completed") == 1, types
            assert len([d for d in attempt_dirs(cluster.root, job_id) if (d / "runner.jsonl").exists()]) == 1
            assert holder(ca, job_id) in workers
            steps = [e["data"]["step"] for e in evs if e["type"] == "metrics" and "loss" in e["data"]]
            assert steps == list(range(1, done[job_id]["current_step"] + 1)), steps  # none twice, none lost
            # Both replicas read the same events, log and job.
            assert events(cb, job_id) == evs
            log_a = ca.get(f"/v1/training_jobs/{job_id}/logs/full").text
            assert log_a == cb.get(f"/v1/training_jobs/{job_id}/logs/full").text and "Job completed" in log_a
            job_a, job_b = ca.get(f"/v1/training_jobs/{job_id}").json(), cb.get(f"/v1/training_jobs/{job_id}").json()
            url_a = job_a.pop("download_url")  # each replica links to itself; the rest is identical
            assert url_a.startswith(a.url) and job_b.pop("download_url").startswith(b.url)
            assert job_a == job_b
            # A link signed by one replica downloads from the other (they share the master key).
            assert httpx.get(url_a.replace(a.url, b.url)).status_code == 200

        # The dead worker's job was taken over by the survivor, which re-attached to the same runner.
        recovered = [e for e in events(ca, long_id) if e["type"] == "worker.recovered"]
        assert len(recovered) == 1
        assert recovered[0]["data"]["previous_worker"].split(":")[1] == victim
        survivor = next(pid for pid in workers if pid != victim)
        assert f":{survivor}:" in recovered[0]["message"]
        assert cb.get(f"/v1/training_jobs/{long_id}/logs").text.rstrip().endswith("data: [Job completed]")
        listed = {j["id"] for j in ca.get("/v1/training_jobs", params={"limit": 10}).json()["data"]}
        assert listed == {j["id"] for j in cb.get("/v1/training_jobs", params={"limit": 10}).json()["data"]}
        assert set(done) <= listed
