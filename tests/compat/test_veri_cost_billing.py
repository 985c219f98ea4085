"""The official ``veri`` CLI 0.2.10, unchanged, on cost and billing (sdk-contracts A.4.6, A.4.7, A.8):
``gpu list``, ``gpu compare``, ``cost estimate``, ``cost summary``, ``jobs estimate`` and
``billing balance|transactions|burn-rate``. Each run's JSON output is compared with what the server
answers over HTTP; metered usage comes from a job the test moves through the state machine the way
the scheduler does (these servers run no scheduler)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from tuneyard.services import billing, orgs
from tuneyard.services.job_states import transition
from tuneyard.store.models import TrainingJob, utcnow

V = "0.2.10"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SFT_ROWS = [{"messages": [{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": str(i)}]}
            for i in range(4)]
TIMESTAMPS = ("period_start", "period_end")


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def as_json(proc):
    out = ok(proc)
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not JSON: {exc}\nstdout:\n{out}\nstderr:\n{proc.stderr}") from None


def without(d: dict, keys=TIMESTAMPS) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


@pytest.fixture
def org(server):
    """A fresh organization with $20 of credit: (org_id, key, client)."""
    with server.ctx.db.session() as s:
        row = orgs.create_org(s, f"veri-billing-{uuid.uuid4().hex[:8]}", initial_credit_usd=0)
        billing.grant(s, row.id, Decimal(20), "test credit")
        _, key = orgs.create_key(s, row.id, "test")
    with server.client(key) as client:
        yield row.id, key, client


def running_job(server, client) -> str:
    """A queued SFT job, then provisioned and running since a minute ago, as the scheduler does."""
    data = "\n".join(json.dumps(r) for r in SFT_ROWS).encode()
    ds = client.post("/v1/datasets", files={"file": ("sft.jsonl", io.BytesIO(data), "application/jsonl")},
                     data={"name": "sft"}).json()["id"]
    job_id = client.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": ds, "method": "sft",
                                                    "hyperparameters": {"max_steps": 5}}).json()["id"]
    with server.ctx.db.session() as s:
        job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()).scalar_one()
        transition(s, job, "provisioning", "Provisioning (test)")
        transition(s, job, "running", "Training started (test)")
        job.provisioning_at = utcnow() - timedelta(seconds=60)
    return job_id


def finish(server, job_id: str) -> None:
    with server.ctx.db.session() as s:
        job = s.execute(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()).scalar_one()
        transition(s, job, "completed", "Job completed (test)")


def test_gpu_list_and_compare(server, run_veri, org):
    _, key, client = org
    rows = as_json(run_veri(V, "gpu", "list", "-o", "json", key=key))
    api_rows = client.get("/v1/cost/rates").json()["rates"]
    assert [(r["provider"], r["gpu_type"], r["usd_per_hour"]) for r in rows] == \
        [(r["provider"], r["gpu_type"], r["usd_per_hour"]) for r in api_rows]
    assert {"prime_intellect", "lambda", "runpod", "aws", "gcp", "azure", "vast", "local"} <= {r["provider"]
                                                                                               for r in rows}
    table = ok(run_veri(V, "gpu", "list", key=key))  # the default rich table renders too
    assert "H100-80GB" in table and "runpod" in table

    cmp = as_json(run_veri(V, "gpu", "compare", "--type", "h100", "--count", "2", "--hours", "1.5", "-o", "json",
                           key=key))
    assert cmp == client.get("/v1/cost/compare", params={"gpu_type": "h100", "gpu_count": 2,
                                                        "duration_minutes": 90}).json()
    costs = [p["cost_usd"] for p in cmp["providers"]]
    assert costs == sorted(costs) and cmp["cheapest"]["provider"] == cmp["providers"][0]["provider"]


def test_cost_estimate_and_jobs_estimate(server, run_veri, org, veri_home):
    _, key, client = org
    est = as_json(run_veri(V, "cost", "estimate", "--gpu-type", "a100-80gb", "--gpu-count", "2", "--hours", "1.5",
                           "--provider", "lambda", "-o", "json", key=key))
    # The SDK always sends markup=1.3 (its default).
    assert est == client.get("/v1/cost/estimate", params={"gpu_type": "A100-80GB", "gpu_count": 2,
                                                          "duration_minutes": 90, "provider": "lambda",
                                                          "markup": 1.3}).json()
    assert est["markup_multiplier"] == 1.3 and est["provider"] == "lambda" and est["cost_usd"] > est["gpu_cost_usd"]

    config = veri_home / "train.toml"
    config.write_text('kind = "train"\n[model]\nbase = "Qwen/Qwen3-4B"\n[dataset]\nid = "ds_x"\n'
                      '[method]\ntype = "sft"\nmax_steps = 240\n[resources]\ngpu_type = "H100-80GB"\ngpu_count = 1\n')
    jobs_est = as_json(run_veri(V, "jobs", "estimate", str(config), "-o", "json", key=key))
    # 0.2.10 sends duration_minutes = max_steps and no provider: the cheapest offer of that GPU.
    assert jobs_est == client.get("/v1/cost/estimate", params={"gpu_type": "H100-80GB", "gpu_count": 1,
                                                               "duration_minutes": 240, "markup": 1.3}).json()
    rates = [r for r in client.get("/v1/cost/rates").json()["rates"] if r["gpu_type"] == "H100-80GB"]
    assert jobs_est["provider"] == min(rates, key=lambda r: r["usd_per_hour"])["provider"]


def test_billing_and_cost_summary_follow_metered_usage(server, run_veri, org):
    org_id, key, client = org
    balance = as_json(run_veri(V, "billing", "balance", "-o", "json", key=key))
    assert balance["org_id"] == org_id and balance["balance_usd"] == 20 and balance["plan"]

    job_id = running_job(server, client)
    burn = as_json(run_veri(V, "billing", "burn-rate", "-o", "json", key=key))
    assert [i["id"] for i in burn["items"]] == [job_id] and burn["usd_per_hour"] > 0
    assert burn["hours_remaining"] == pytest.approx(20 / burn["usd_per_hour"], rel=1e-3)

    finish(server, job_id)
    cost = Decimal(str(client.get(f"/v1/training_jobs/{job_id}").json()["cost_usd"]))
    assert cost > 0
    txns = as_json(run_veri(V, "billing", "transactions", "--limit", "5", "-o", "json", key=key))
    assert txns == client.get("/v1/billing/transactions", params={"limit": 5}).json()["data"]
    assert txns[0]["type"] == "charge" and txns[0]["reference"] == job_id and txns[-1]["type"] == "grant"
    assert -sum(Decimal(str(t["amount_usd"])) for t in txns if t["type"] == "charge") == cost

    summary = as_json(run_veri(V, "cost", "summary", "--days", "7", "-o", "json", key=key))
    assert without(summary) == without(client.get("/v1/cost/summary", params={"days": 7}).json())
    assert Decimal(str(summary["total_cost_usd"])) == cost and summary["days"] == 7
    after = as_json(run_veri(V, "billing", "balance", "-o", "json", key=key))
    assert Decimal(str(after["balance_usd"])) == 20 - cost
    assert as_json(run_veri(V, "billing", "burn-rate", "-o", "json", key=key))["items"] == []
