"""Metering real training runs: after an SFT job the spend reports, the transactions and the balance
agree to the cent; a running job whose organization runs out of credit is cancelled, and the
ledger never goes below zero."""

from __future__ import annotations

import io
import json
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from tuneyard.services import billing, orgs

# A CPU hour at $36 (a cent a second) and a charge every 2 s: real runs cost visible money fast.
# Estimates are made optimistic on purpose (1 s start-up, 1 ms a step) so a long job gets created
# with little credit and then runs out of it.
SERVER_SETTINGS = {"local_rates": {"cpu": 36.0}, "metering_interval_seconds": 2.0,
                   "estimate_startup_seconds": 1.0, "estimate_cpu_step_seconds": 0.001}
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(8)]
TINY = {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-4, "max_length": 64, "lora_r": 4, "seed": 1}


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


def wait(c: httpx.Client, job_id: str, timeout: float = 600) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.get(f"/v1/training_jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


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


def test_reports_transactions_and_balance_agree_after_a_real_sft_job(server):
    with funded(server, "5") as c:
        r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": upload(c), "method": "sft",
                                              "hyperparameters": TINY})
        assert r.status_code == 201, r.text
        job = wait(c, r.json()["id"])
        assert job["status"] == "completed", job
        cost = D(job["cost_usd"])
        assert cost > D("0.05")  # seconds of provisioning and training at a cent a second

        txns = all_transactions(c)
        charges = [t for t in txns if t["type"] == "charge"]
        assert charges and all(t["reference"] == job["id"] and t["amount_usd"] < 0 for t in charges)
        assert len(charges) >= 2, "a running job is charged period by period, not only at the end"
        assert -sum(D(t["amount_usd"]) for t in charges) == cost
        assert sum(D(t["amount_usd"]) for t in txns) == D(c.get("/v1/billing/balance").json()["balance_usd"])
        assert D(c.get("/v1/billing/balance").json()["balance_usd"]) == 5 - cost

        summary = c.get("/v1/cost/summary", params={"days": 1}).json()
        assert D(summary["total_cost_usd"]) == D(summary["training_cost_usd"]) == cost
        assert summary["serving_cost_usd"] == 0 and summary["job_count"] == 1
        by_provider = c.get("/v1/cost/by_provider").json()
        assert [(p["provider"], D(p["cost_usd"])) for p in by_provider["data"]] == [("local", cost)]
        by_gpu = c.get("/v1/cost/by_gpu").json()
        assert [(g["gpu_type"], D(g["cost_usd"])) for g in by_gpu["data"]] == [("cpu", cost)]
        assert D(by_gpu["total_cost_usd"]) == D(by_provider["total_cost_usd"]) == cost
        # Metered from provisioning to the end: at least the time it trained, at the rate of the hour.
        assert by_gpu["data"][0]["gpu_seconds"] >= job["duration_seconds"]
        assert cost == pytest.approx(D(by_gpu["data"][0]["gpu_seconds"]) * D("36.006849") / 3600, abs=Decimal("0.00001"))

        settled = [e for e in events(c, job["id"]) if e["type"] == "billing.settled"]
        assert len(settled) == 1 and D(settled[0]["data"]["cost_usd"]) == cost
        burn = c.get("/v1/billing/burn_rate").json()
        assert burn["usd_per_hour"] == 0 and burn["items"] == []
        assert c.get("/v1/billing/balance").json()["held_usd"] == 0


def test_a_running_job_is_cancelled_when_its_organization_runs_out_of_credit(server):
    with funded(server, "0.05") as c:
        r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": upload(c), "method": "sft",
                                              "hyperparameters": {**TINY, "max_steps": 500}})
        assert r.status_code == 201, r.text  # its (optimistic) estimate fits in the credit
        job = wait(c, r.json()["id"])
        assert job["status"] == "cancelled", job
        exhausted = [e for e in events(c, job["id"]) if e["type"] == "billing.credit_exhausted"]
        assert len(exhausted) == 1 and exhausted[0]["level"] == "warning"
        balance = D(c.get("/v1/billing/balance").json()["balance_usd"])
        assert 0 <= balance < D("0.03")  # never overdrawn; stopped before the next 2 s could be paid
        assert D(job["cost_usd"]) == D("0.05") - balance
        summary = c.get("/v1/cost/summary").json()
        assert D(summary["total_cost_usd"]) == D(job["cost_usd"])
        assert summary["unbilled_usd"] >= 0  # time past the last cent is recorded, not charged
