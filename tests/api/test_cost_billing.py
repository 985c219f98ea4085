"""/v1/cost and /v1/billing on SQLite and Postgres: the rate catalog, estimates and comparisons,
the credit check (402 with the error envelope), holds, idempotent metering, and 50 concurrent job
creations against a balance that covers exactly 10."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tuneyard.services import billing, metering, orgs
from tuneyard.services.job_states import transition
from tuneyard.store.models import TrainingJob, UsageRecord, utcnow

# 50 jobs of one organization wait in the queue at once in the concurrency test.
SERVER_SETTINGS = {"max_concurrent_jobs_per_org": 100}
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": str(i)}]}
            for i in range(4)]
JOB = {"base_model": MODEL, "method": "sft", "hyperparameters": {"max_steps": 50}}
PROVIDERS = {"prime_intellect", "lambda", "runpod", "aws", "gcp", "azure", "vast"}
GPUS = {"A10G-24GB", "L4-24GB", "L40S-48GB", "A100-40GB", "A100-80GB", "H100-80GB", "H200-141GB", "MI300X-192GB"}


def D(x) -> Decimal:
    return Decimal(str(x))


def q(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def funded_org(server, usd) -> tuple[str, str]:
    """A fresh organization holding exactly ``usd`` of credit (granted as `tuneyard credits grant` does)."""
    with server.ctx.db.session() as s:
        org = orgs.create_org(s, f"org-{uuid.uuid4().hex[:8]}", initial_credit_usd=0)
        if usd:
            billing.grant(s, org.id, D(usd), "test credit")
        _, key = orgs.create_key(s, org.id, "test")
    return org.id, key


def upload(c: httpx.Client) -> str:
    data = "\n".join(json.dumps(r) for r in SFT_ROWS).encode()
    r = c.post("/v1/datasets", files={"file": ("sft.jsonl", io.BytesIO(data), "application/jsonl")},
               data={"name": "sft"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def assert_402(r: httpx.Response) -> dict:
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["type"] == "billing_error" and err["code"] == "insufficient_credit"
    assert "insufficient credit" in err["message"].lower()
    return err


def charges(c: httpx.Client, ref: str) -> list[dict]:
    rows = c.get("/v1/billing/transactions", params={"limit": 100}).json()["data"]
    return [t for t in rows if t["type"] == "charge" and t["reference"] == ref]


# -- the catalog and estimates ----------------------------------------------------------------------

def test_rates_cover_every_provider_and_gpu_with_source_and_date(server, api):
    body = api.get("/v1/cost/rates").json()
    rows = body["rates"]
    assert body["updated_at"]
    assert PROVIDERS | {"local"} <= {r["provider"] for r in rows}
    assert GPUS <= {r["gpu_type"] for r in rows}
    for r in rows:
        assert r["usd_per_hour"] > 0 and r["source"] and r["as_of"], r
        assert r["spot_usd_per_hour"] is None or 0 < r["spot_usd_per_hour"] < r["usd_per_hour"], r
    for provider in PROVIDERS:
        assert any(r["provider"] == provider for r in rows), provider
    # The local rows are this cluster's hardware (the CPU here), priced from settings.
    local = [r for r in rows if r["provider"] == "local"]
    assert local and all(r["gpu_type"] in ("cpu", *GPUS) or r["gpu_type"] for r in local)


def test_estimate_itemises_the_contract_example(server, api):
    """The SDK's wire example: A100-80GB x2 for 90 minutes at markup 1.3."""
    s = server.ctx.settings
    rate = next(r for r in api.get("/v1/cost/rates").json()["rates"]
                if r["provider"] == "lambda" and r["gpu_type"] == "A100-80GB")
    r = api.get("/v1/cost/estimate", params={"gpu_type": "A100-80GB", "gpu_count": 2, "duration_minutes": 90,
                                             "markup": 1.3, "provider": "lambda"})
    assert r.status_code == 200, r.text
    e = r.json()
    startup = D(s.estimate_startup_seconds)
    storage_per_hour = D(s.storage_gb_per_workload) * D(s.storage_usd_per_gb_month) / 730
    gpu = D(rate["usd_per_hour"]) * 2 * D(1.5)
    overhead = D(rate["usd_per_hour"]) * 2 * startup / 3600
    storage = storage_per_hour * (5400 + startup) / 3600
    assert (e["provider"], e["gpu_type"], e["gpu_count"], e["duration_minutes"]) == ("lambda", "A100-80GB", 2, 90)
    assert e["duration_seconds"] == 5400 + s.estimate_startup_seconds
    assert D(e["gpu_cost_usd"]) == q(gpu)
    assert D(e["overhead_cost_usd"]) == q(overhead)
    assert D(e["storage_cost_usd"]) == q(storage)
    assert e["markup_multiplier"] == 1.3
    assert D(e["cost_usd"]) == q((q(gpu) + q(overhead) + q(storage)) * D(1.3))
    # Client spellings of the GPU are the same GPU.
    again = api.get("/v1/cost/estimate", params={"gpu_type": "a100", "gpu_count": 2, "duration_minutes": 90,
                                                 "markup": 1.3, "provider": "LAMBDA"}).json()
    assert again["cost_usd"] == e["cost_usd"] and again["gpu_type"] == "A100-80GB"


def test_estimate_without_provider_picks_the_cheapest_offer(server, api):
    rows = [r for r in api.get("/v1/cost/rates").json()["rates"] if r["gpu_type"] == "H100-80GB"]
    cheapest = min(rows, key=lambda r: r["usd_per_hour"])
    e = api.get("/v1/cost/estimate", params={"gpu_type": "H100", "duration_minutes": 30}).json()
    assert e["provider"] == cheapest["provider"] and e["usd_per_gpu_hour"] == cheapest["usd_per_hour"]


def test_compare_is_cheapest_first_with_savings(server, api):
    r = api.get("/v1/cost/compare", params={"gpu_type": "h100-80gb", "gpu_count": 8, "duration_minutes": 120})
    assert r.status_code == 200, r.text
    body = r.json()
    rows = body["providers"]
    offered = {x["provider"] for x in api.get("/v1/cost/rates").json()["rates"] if x["gpu_type"] == "H100-80GB"}
    assert {x["provider"] for x in rows} == offered and len(rows) >= 5
    costs_ = [x["cost_usd"] for x in rows]
    assert costs_ == sorted(costs_)
    top = D(costs_[-1])
    for x in rows:
        assert x["gpu_count"] == 8 and x["duration_minutes"] == 120
        assert D(x["savings_usd"]) == top - D(x["cost_usd"])
    assert body["cheapest"]["provider"] == rows[0]["provider"]
    assert body["most_expensive"]["provider"] == rows[-1]["provider"]
    assert D(body["max_savings_usd"]) == top - D(costs_[0]) > 0


def test_bad_gpu_and_provider_are_400s_naming_the_field(server, api):
    r = api.get("/v1/cost/estimate", params={"gpu_type": "B9000"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "gpu_type"
    assert "H100-80GB" in r.json()["error"]["message"]  # lists what is known
    r = api.get("/v1/cost/estimate", params={"gpu_type": "MI300X-192GB", "provider": "lambda"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "provider"
    r = api.get("/v1/cost/compare", params={"gpu_type": "nope"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_gpu_type"
    assert api.get("/v1/cost/estimate", params={"gpu_type": "H100", "gpu_count": 0}).status_code == 422
    assert api.get("/v1/cost/summary", params={"days": 0}).status_code == 400


def test_monthly_projection(server, api):
    params = {"jobs_per_day": 3, "avg_duration_minutes": 45, "gpu_type": "L40S", "gpu_count": 2,
              "provider": "runpod"}
    p = api.get("/v1/cost/monthly_projection", params=params).json()
    per_job = api.get("/v1/cost/estimate", params={"gpu_type": "L40S", "gpu_count": 2, "duration_minutes": 45,
                                                   "provider": "runpod"}).json()
    assert p["total_jobs"] == 90 and p["avg_cost_per_job_usd"] == per_job["cost_usd"]
    assert D(p["training_monthly_usd"]) == q(90 * D(per_job["cost_usd"]))
    assert p["keep_warm_monthly_usd"] == 0 and p["deployments"] == []  # nothing serving in this org
    assert D(p["total_monthly_usd"]) == D(p["training_monthly_usd"]) + D(p["keep_warm_monthly_usd"])


# -- balance, holds and 402 -------------------------------------------------------------------------

def test_check_balance(server):
    _, key = funded_org(server, 5)
    with server.client(key) as c:
        ok = c.post("/v1/billing/check_balance", json={"estimated_cost_usd": 4.5}).json()
        assert ok["sufficient"] is True and ok["balance_usd"] == 5 and ok["estimated_cost_usd"] == 4.5
        assert_402(c.post("/v1/billing/check_balance", json={"estimated_cost_usd": 5.01}))
        # or a GPU lease to estimate first
        assert_402(c.post("/v1/billing/check_balance", json={"gpu_type": "H100", "gpu_count": 8,
                                                             "duration_minutes": 600}))


def test_job_beyond_the_balance_is_402_and_nothing_is_queued(server):
    _, key = funded_org(server, 0)
    with server.client(key) as c:
        ds = upload(c)
        err = assert_402(c.post("/v1/training_jobs", json={**JOB, "dataset_id": ds}))
        assert "credits grant" in err["message"]
        assert c.get("/v1/training_jobs").json()["data"] == []
        assert c.get("/v1/billing/balance").json()["balance_usd"] == 0


def test_a_job_holds_its_estimate_and_costs_nothing_if_cancelled_before_it_starts(server):
    org_id, key = funded_org(server, 1)
    with server.client(key) as c:
        ds = upload(c)
        job = c.post("/v1/training_jobs", json={**JOB, "dataset_id": ds}).json()
        assert job["provider"] == "local"  # the cheapest (only) provider this cluster runs on
        est = D(job["estimated_cost_usd"])
        assert est > 0
        bal = c.get("/v1/billing/balance").json()
        assert bal["balance_usd"] == 1 and D(bal["held_usd"]) == est and D(bal["available_usd"]) == 1 - est
        cancelled = c.post(f"/v1/training_jobs/{job['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["cost_usd"] == 0
        bal = c.get("/v1/billing/balance").json()
        assert bal["balance_usd"] == 1 and bal["held_usd"] == 0
        assert charges(c, job["id"]) == []
        assert c.get("/v1/cost/summary").json()["total_cost_usd"] == 0


def test_fifty_concurrent_creations_against_credit_for_ten_create_exactly_ten(server):
    _, probe_key = funded_org(server, 100)
    with server.client(probe_key) as c:
        estimate = D(c.post("/v1/training_jobs", json={**JOB, "dataset_id": upload(c)}).json()["estimated_cost_usd"])
    _, key = funded_org(server, q(estimate * D(10.5)))
    with server.client(key) as c:
        ds = upload(c)
    barrier = threading.Barrier(50)
    results: list[int] = []

    def create():
        with server.client(key) as c:
            barrier.wait(timeout=60)
            results.append(c.post("/v1/training_jobs", json={**JOB, "dataset_id": ds}, timeout=120).status_code)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(results) == [201] * 10 + [402] * 40, results
    with server.client(key) as c:
        assert len(c.get("/v1/training_jobs", params={"limit": 100}).json()["data"]) == 10
        bal = c.get("/v1/billing/balance").json()
        assert D(bal["held_usd"]) == 10 * estimate
        assert D(bal["available_usd"]) == q(estimate * D(10.5)) - 10 * estimate >= 0


# -- metering: idempotent, per period and per job ------------------------------------------------------

def _start(server, job_id: str, *, seconds_ago: float, status: str = "provisioning") -> None:
    """What the scheduler's claim does, back-dated so that there is time to bill."""
    with server.ctx.db.session() as s:
        job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()).scalar_one()
        transition(s, job, "provisioning", "Provisioning (test)")
        if status == "running":
            transition(s, job, "running", "Training started (test)")
        job.provisioning_at = utcnow() - timedelta(seconds=seconds_ago)


def test_metering_charges_each_period_once_and_settles_once(server):
    org_id, key = funded_org(server, 10)
    with server.client(key) as c:
        job_id = c.post("/v1/training_jobs", json={**JOB, "dataset_id": upload(c)}).json()["id"]
    _start(server, job_id, seconds_ago=120, status="running")

    # Two workers meter at the same moment: one period is charged, not two.
    passes = [threading.Thread(target=metering.meter_running, args=(server.ctx.db, server.ctx.settings))
              for _ in range(2)]
    for t in passes:
        t.start()
    for t in passes:
        t.join(timeout=60)
    with server.ctx.db.session() as s:
        first = s.execute(select(UsageRecord).where(UsageRecord.resource_id == job_id)).scalars().all()
    assert len(first) == 1 and 119 < first[0].seconds < 200

    # The same period can never be written twice: the store refuses it.
    with pytest.raises(IntegrityError):
        with server.ctx.db.session() as s:
            billing.charge(s, org_id, D("0.01"), "dup", reference=job_id,
                           idempotency_key=f"usage:training_job:{job_id}:{first[0].period_start.isoformat()}")
    with pytest.raises(IntegrityError):
        with server.ctx.db.session() as s:
            s.add(UsageRecord(id="use_dup" + uuid.uuid4().hex[:8], org_id=org_id, resource_kind="training_job",
                              resource_id=job_id, period_start=first[0].period_start, period_end=utcnow(),
                              seconds=1, gpu_type="cpu", gpu_count=1, provider="local", usd_per_hour=1,
                              amount_usd=1, unbilled_usd=0, tokens=0))
            s.flush()

    # The job ends a second after the metered period (long enough to cost more than the ledger's
    # $0.000001 resolution at this rate; ending at once would settle nothing); processing its end
    # twice settles it once.
    time.sleep(1)
    with server.ctx.db.session() as s:
        job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()).scalar_one()
        transition(s, job, "completed", "Job completed (test)")
        end = job.completed_at
        from tuneyard.services import job_billing

        job_billing.on_transition(s, job, "running", "completed", end)
    with server.client(key) as c:
        job = c.get(f"/v1/training_jobs/{job_id}").json()
        txns = charges(c, job_id)
        assert len(txns) == 2  # the metered period and the settlement
        cost = -sum(D(t["amount_usd"]) for t in txns)
        assert D(job["cost_usd"]) == cost > 0
        bal = c.get("/v1/billing/balance").json()
        assert D(bal["balance_usd"]) == 10 - cost and bal["held_usd"] == 0
        summary = c.get("/v1/cost/summary").json()
        assert D(summary["total_cost_usd"]) == D(summary["training_cost_usd"]) == cost
        assert summary["job_count"] == 1
        by_gpu = c.get("/v1/cost/by_gpu").json()["data"]
        assert [(g["gpu_type"], D(g["cost_usd"])) for g in by_gpu] == [(job["gpu"]["type"], cost)]
        events = [e["type"] for e in c.get(f"/v1/training_jobs/{job_id}/events", params={"limit": 100})
                  .json()["data"]]
        assert events.count("billing.settled") == 1


def test_burn_rate_lists_running_work_and_runway(server):
    _, key = funded_org(server, 2)
    with server.client(key) as c:
        job_id = c.post("/v1/training_jobs", json={**JOB, "dataset_id": upload(c)}).json()["id"]
        idle = c.get("/v1/billing/burn_rate").json()
        assert idle["usd_per_hour"] == 0 and idle["hours_remaining"] is None and idle["items"] == []
        _start(server, job_id, seconds_ago=1, status="running")
        burn = c.get("/v1/billing/burn_rate").json()
        est = c.get("/v1/cost/estimate", params={"gpu_type": burn["items"][0]["gpu"]["type"],
                                                 "markup": server.ctx.settings.billing_markup}).json()
        assert [i["id"] for i in burn["items"]] == [job_id] and burn["active_jobs"] == 1
        assert burn["usd_per_hour"] == burn["training_usd_per_hour"] == est["usd_per_hour"]
        assert burn["hours_remaining"] == pytest.approx(burn["balance_usd"] / burn["usd_per_hour"], abs=0.01)


def test_transactions_are_paginated_newest_first(server):
    org_id, key = funded_org(server, 1)
    with server.ctx.db.session() as s:
        for i in range(4):
            billing.grant(s, org_id, D(i + 1), f"grant {i}")
    with server.client(key) as c:
        first = c.get("/v1/billing/transactions", params={"limit": 2}).json()
        assert first["has_more"] is True and [t["description"] for t in first["data"]] == ["grant 3", "grant 2"]
        rest = c.get("/v1/billing/transactions", params={"limit": 10, "after": first["data"][-1]["id"]}).json()
        assert rest["has_more"] is False and [t["amount_usd"] for t in rest["data"]] == [2, 1, 1]
        assert all(t["id"].startswith("txn_") and t["object"] == "transaction" and t["created_at"]
                   for t in first["data"] + rest["data"])
        assert c.get("/v1/billing/balance").json()["balance_usd"] == 11


# -- deployments: an hour held, metered while provisioning or serving, tokens counted ------------------

def _dep(server, dep_id: str):
    from tuneyard.store.models import Deployment

    with server.ctx.db.session() as s:
        return s.execute(select(Deployment).where(Deployment.id == dep_id)).scalar_one()


def _dep_transition(server, dep_id: str, status: str, *, back_date: float | None = None, tokens: int = 0) -> None:
    """What the supervisor does (these servers run none); ``back_date`` moves the start into the past."""
    from tuneyard.ids import new_id
    from tuneyard.services import deployment_states
    from tuneyard.store.models import Deployment, DeploymentRequest

    with server.ctx.db.session() as s:
        dep = s.execute(select(Deployment).where(Deployment.id == dep_id).with_for_update()).scalar_one()
        if tokens:  # a request served, as the request log writes it
            s.add(DeploymentRequest(id=new_id("request"), deployment_id=dep.id, org_id=dep.org_id, status_code=200,
                                    latency_ms=12.0, prompt_tokens=tokens - 2, completion_tokens=2))
            dep.prompt_tokens, dep.completion_tokens = dep.prompt_tokens + tokens - 2, dep.completion_tokens + 2
        deployment_states.transition(s, dep, status, f"{status} (test)")
        if back_date is not None:
            dep.provisioning_at = utcnow() - timedelta(seconds=back_date)


def _usage(server, ref: str) -> list[UsageRecord]:
    with server.ctx.db.session() as s:
        return list(s.execute(select(UsageRecord).where(UsageRecord.resource_id == ref)
                              .order_by(UsageRecord.period_start)).scalars())


def test_deployment_402_when_an_hour_of_serving_is_not_covered(server):
    _, key = funded_org(server, "0.01")
    with server.client(key) as c:
        err = assert_402(c.post("/v1/deployments", json={"model": MODEL, "name": "too-poor"}))
        assert "deployment" in err["message"]
        assert c.get("/v1/deployments").json()["data"] == []


def test_deployment_is_metered_while_provisioning_or_serving(server):
    import time

    _, key = funded_org(server, 10)
    with server.client(key) as c:
        r = c.post("/v1/deployments", json={"model": MODEL, "name": "billed"})
        assert r.status_code == 201, r.text
        dep = r.json()
        price = c.get("/v1/cost/estimate", params={"gpu_type": dep["gpu"]["type"], "gpu_count": dep["gpu"]["count"],
                                                   "markup": server.ctx.settings.billing_markup}).json()
        assert dep["provider"] == "local" and dep["cost_per_hour_usd"] == price["usd_per_hour"]
        assert D(c.get("/v1/billing/balance").json()["held_usd"]) == q(D(price["usd_per_hour"]))  # an hour

        _dep_transition(server, dep["id"], "provisioning", back_date=300)
        _dep_transition(server, dep["id"], "serving")
        burn = c.get("/v1/billing/burn_rate").json()
        assert burn["serving_usd_per_hour"] == dep["cost_per_hour_usd"] and burn["active_deployments"] == 1
        projection = c.get("/v1/cost/monthly_projection", params={"jobs_per_day": 0}).json()
        assert [d["id"] for d in projection["deployments"]] == [dep["id"]]
        assert D(projection["keep_warm_monthly_usd"]) == q(D(dep["cost_per_hour_usd"]) * 730)

        metering.meter_running(server.ctx.db, server.ctx.settings)
        _dep_transition(server, dep["id"], "unhealthy", tokens=30)
        unhealthy_at = _usage(server, dep["id"])[-1].period_end
        time.sleep(2)  # unhealthy: the worker does not serve, this time is not billed
        _dep_transition(server, dep["id"], "serving")
        resumed_at = _usage(server, dep["id"])[-1].period_end
        assert (resumed_at - unhealthy_at).total_seconds() >= 2
        stopped = c.post(f"/v1/deployments/{dep['id']}/stop").json()
        assert stopped["status"] == "stopped"

        rows = _usage(server, dep["id"])
        billed = [r for r in rows if r.seconds > 0]
        assert all(r.period_end <= unhealthy_at or r.period_start >= resumed_at for r in billed)
        gap = [r for r in rows if r.period_start == unhealthy_at]  # a free period covers the unhealthy time
        assert len(gap) == 1 and gap[0].period_end == resumed_at and gap[0].amount_usd == 0 == gap[0].seconds
        starts = [r.period_start for r in rows]
        assert len(starts) == len(set(starts))  # each period once
        total = sum((D(r.amount_usd) for r in rows), D(0))
        final = c.get(f"/v1/deployments/{dep['id']}").json()
        assert D(final["total_cost_usd"]) == total > 0
        summary = c.get("/v1/cost/summary").json()
        assert D(summary["serving_cost_usd"]) == D(summary["total_cost_usd"]) == total
        assert summary["tokens_served"] == 30 and summary["deployment_count"] == 1
        assert sum(r.tokens for r in rows) == 30  # the period that served them counts them too
        by_provider = c.get("/v1/cost/by_provider").json()["data"]
        assert [(p["provider"], D(p["serving_cost_usd"]), p["tokens_served"]) for p in by_provider] == \
            [("local", total, 30)]
        assert -sum(D(t["amount_usd"]) for t in charges(c, dep["id"])) == total
        bal = c.get("/v1/billing/balance").json()
        assert D(bal["balance_usd"]) == 10 - total and bal["held_usd"] == 0
        events = c.get(f"/v1/deployments/{dep['id']}/events").json()["data"]
        assert [e["type"] for e in events].count("billing.settled") == 1


def test_a_deployment_is_stopped_when_its_organization_runs_out_of_credit(server):
    _, key = funded_org(server, 1)
    with server.client(key) as c:
        dep = c.post("/v1/deployments", json={"model": MODEL, "name": "broke"}).json()
        _dep_transition(server, dep["id"], "provisioning", back_date=48 * 3600)  # two days at ~$0.11/h > $1
        _dep_transition(server, dep["id"], "serving")
        metering.meter_running(server.ctx.db, server.ctx.settings)
        final = c.get(f"/v1/deployments/{dep['id']}").json()
        assert final["status"] == "stopped" and final["error_code"] == "insufficient_credit"
        events = [e["type"] for e in c.get(f"/v1/deployments/{dep['id']}/events").json()["data"]]
        assert "billing.credit_exhausted" in events
        bal = c.get("/v1/billing/balance").json()
        assert bal["balance_usd"] == 0 and D(final["total_cost_usd"]) == 1  # capped: never overdrawn
        assert c.get("/v1/cost/summary").json()["unbilled_usd"] > 0
