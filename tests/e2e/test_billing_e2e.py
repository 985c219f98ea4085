"""Metering real work: after an SFT job and a deployment of its adapter serving requests, the spend
reports, the transactions and the balance agree to the cent; a running job whose organization runs
out of credit is cancelled, and the ledger never goes below zero."""

from __future__ import annotations

import io
import json
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from tests.deploy_helpers import wait_job
from tuneyard.services import billing, orgs

# A CPU hour at $36 (a cent a second) and a charge every 2 s: real runs cost visible money fast.
# Estimates are made optimistic on purpose (1 s start-up, 1 ms a step) so a long job gets created
# with little credit and then runs out of it.
SERVER_SETTINGS = {"local_rates": {"cpu": 36.0}, "metering_interval_seconds": 2.0,
                   "estimate_startup_seconds": 1.0, "estimate_cpu_step_seconds": 0.001,
                   # one torch thread per deployment worker, quick health checks (a shared 2-core machine)
                   "inference_threads": 1, "deployment_health_interval_seconds": 1.0}
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(8)]
TINY = {"max_steps": 1, "batch_size": 2, "learning_rate": 5e-4, "max_length": 48, "lora_r": 4, "seed": 1}


def D(x) -> Decimal:
    return Decimal(str(x))


@pytest.fixture(scope="module")
def server(sqlite_server):
    return sqlite_server


def funded(server, usd: str) -> httpx.Client:
    with server.ctx.db.session() as s:
        org = orgs.create_org(s, f"billing-{uuid.uuid4().hex[:8]}", initial_credit_usd=0)
        billing.grant(s, org.id, D(usd), "test credit")
        _, key = orgs.create_key(s, org.id, "test")
    return server.client(key)


def upload(c: httpx.Client) -> str:
    data = "\n".join(json.dumps(r) for r in SFT_ROWS).encode()
    r = c.post("/v1/datasets", files={"file": ("sft.jsonl", io.BytesIO(data), "application/jsonl")},
               data={"name": "sft"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def all_transactions(c: httpx.Client) -> list[dict]:
    rows, after = [], None
    while True:
        page = c.get("/v1/billing/transactions", params={"limit": 100, **({"after": after} if after else {})}).json()
        rows += page["data"]
        if not page["has_more"]:
            return rows
        after = page["data"][-1]["id"]


def events(c: httpx.Client, job_id: str) -> list[dict]:
    return c.get(f"/v1/training_jobs/{job_id}/events", params={"limit": 100}).json()["data"]


def serve_and_stop(c: httpx.Client, job_id: str) -> dict:
    """Deploy the job's adapter, answer two chat requests, stop it; the final deployment row."""
    r = c.post("/v1/deployments", json={"model": job_id, "name": "billed-lora", "gpu": {"type": "cpu", "count": 1}})
    assert r.status_code == 201, r.text
    dep_id = r.json()["id"]
    try:
        deadline = time.time() + 300
        while (dep := c.get(f"/v1/deployments/{dep_id}").json())["status"] not in ("serving", "failed", "stopped"):
            assert time.time() < deadline, dep
            time.sleep(0.5)
        assert dep["status"] == "serving", dep
        burn = c.get("/v1/billing/burn_rate").json()
        assert burn["active_deployments"] == 1 and burn["serving_usd_per_hour"] == dep["cost_per_hour_usd"]
        for question in ("What is 2 plus 2?", "What is 4 plus 4?"):
            r = c.post(f"/v1/deployments/{dep_id}/chat/completions", timeout=300, json={
                "model": "billed-lora", "messages": [{"role": "user", "content": question}], "max_tokens": 6})
            assert r.status_code == 200, r.text
    finally:
        c.post(f"/v1/deployments/{dep_id}/stop")
    deadline = time.time() + 60  # the request log is written in batches, off the request path
    while (dep := c.get(f"/v1/deployments/{dep_id}").json())["total_requests"] < 2:
        assert time.time() < deadline, dep
        time.sleep(0.3)
    return dep


def test_reports_transactions_and_balance_agree_after_training_and_serving(server):
    with funded(server, "50") as c:  # a deployment must afford an hour ($36) at creation
        r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": upload(c), "method": "sft",
                                              "hyperparameters": TINY})
        assert r.status_code == 201, r.text
        job = wait_job(c, r.json()["id"])
        assert job["status"] == "completed", job
        training = D(job["cost_usd"])
        assert training > D("0.05")  # seconds of provisioning and training at a cent a second
        job_gpu_seconds = c.get("/v1/cost/by_gpu").json()["data"][0]["gpu_seconds"]
        assert job_gpu_seconds >= job["duration_seconds"]  # metered from provisioning, not from the first step
        assert training == pytest.approx(D(job_gpu_seconds) * D("36.006849") / 3600, abs=Decimal("0.00001"))

        dep = serve_and_stop(c, job["id"])
        assert dep["status"] == "stopped"
        serving = D(dep["total_cost_usd"])
        assert serving > 0 and dep["cost_per_hour_usd"] == pytest.approx(36.006849)
        total = training + serving

        txns = all_transactions(c)
        charges = [t for t in txns if t["type"] == "charge"]
        job_charges = [t for t in charges if t["reference"] == job["id"]]
        assert len(job_charges) >= 2, "a running job is charged period by period, not only at the end"
        assert -sum(D(t["amount_usd"]) for t in job_charges) == training
        assert -sum(D(t["amount_usd"]) for t in charges if t["reference"] == dep["id"]) == serving
        assert {t["reference"] for t in charges} == {job["id"], dep["id"]}
        balance = D(c.get("/v1/billing/balance").json()["balance_usd"])
        assert sum(D(t["amount_usd"]) for t in txns) == balance == 50 - total

        summary = c.get("/v1/cost/summary", params={"days": 1}).json()
        assert D(summary["total_cost_usd"]) == total
        assert (D(summary["training_cost_usd"]), D(summary["serving_cost_usd"])) == (training, serving)
        assert summary["job_count"] == 1 and summary["deployment_count"] == 1
        assert summary["tokens_served"] == dep["prompt_tokens"] + dep["completion_tokens"] > 0
        by_provider = c.get("/v1/cost/by_provider").json()
        assert [(p["provider"], D(p["cost_usd"]), D(p["training_cost_usd"]), D(p["serving_cost_usd"]))
                for p in by_provider["data"]] == [("local", total, training, serving)]
        by_gpu = c.get("/v1/cost/by_gpu").json()
        assert [(g["gpu_type"], D(g["cost_usd"])) for g in by_gpu["data"]] == [("cpu", total)]
        assert D(by_gpu["total_cost_usd"]) == D(by_provider["total_cost_usd"]) == total
        assert round(total, 2) == round(50 - balance, 2)  # to the cent, as a person reads it

        settled = [e for e in events(c, job["id"]) if e["type"] == "billing.settled"]
        assert len(settled) == 1 and D(settled[0]["data"]["cost_usd"]) == training
        burn = c.get("/v1/billing/burn_rate").json()
        assert burn["usd_per_hour"] == 0 and burn["items"] == []
        assert c.get("/v1/billing/balance").json()["held_usd"] == 0


def test_a_running_job_is_cancelled_when_its_organization_runs_out_of_credit(server):
    with funded(server, "0.05") as c:
        r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": upload(c), "method": "sft",
                                              "hyperparameters": {**TINY, "max_steps": 500}})
        assert r.status_code == 201, r.text  # its (optimistic) estimate fits in the credit
        job = wait_job(c, r.json()["id"])
        assert job["status"] == "cancelled", job
        exhausted = [e for e in events(c, job["id"]) if e["type"] == "billing.credit_exhausted"]
        assert len(exhausted) == 1 and exhausted[0]["level"] == "warning"
        balance = D(c.get("/v1/billing/balance").json()["balance_usd"])
        assert 0 <= balance < D("0.03")  # never overdrawn; stopped before the next 2 s could be paid
        assert D(job["cost_usd"]) == D("0.05") - balance
        summary = c.get("/v1/cost/summary").json()
        assert D(summary["total_cost_usd"]) == D(job["cost_usd"])
        assert summary["unbilled_usd"] >= 0  # time past the last cent is recorded, not charged
