"""Creating a training job: every bad input is a 400 naming its field, and nothing is queued."""

from __future__ import annotations

import io
import json

import pytest

SFT_ROWS = [{"messages": [{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": str(i)}]}
            for i in range(4)]
GRPO_ROWS = [{"prompt": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(4)]
REWARD = b"def reward(prompts, completions, **kwargs):\n    return [float(len(c) < 20) for c in completions]\n"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def upload(api, rows, name="d"):
    data = "\n".join(json.dumps(r) for r in rows).encode()
    r = api.post("/v1/datasets", files={"file": (f"{name}.jsonl", io.BytesIO(data), "application/jsonl")},
                 data={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def ids(api):
    rf = api.post("/v1/reward_functions", files={"file": ("r.py", io.BytesIO(REWARD), "text/x-python")},
                  data={"name": "short"}).json()["id"]
    return {"sft": upload(api, SFT_ROWS, "sft"), "grpo": upload(api, GRPO_ROWS, "grpo"), "rf": rf}


def create(api, **body):
    return api.post("/v1/training_jobs", json=body)


def assert_400(r, param, *words):
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    for w in words:
        assert w.lower() in err["message"].lower(), err


def test_format_must_fit_method(api, ids):
    assert_400(create(api, base_model=MODEL, dataset_id=ids["sft"], method="dpo"), "dataset_id", "preference")
    assert_400(create(api, base_model=MODEL, dataset_id=ids["grpo"], method="sft"), "dataset_id", "sft")


def test_grpo_needs_a_reward_function(api, ids):
    assert_400(create(api, base_model=MODEL, dataset_id=ids["grpo"]), "reward_function_id", "reward")


def test_unknown_reward_function(api, ids):
    assert_400(create(api, base_model=MODEL, dataset_id=ids["grpo"], reward_function_id="rf_nope"),
               "reward_function_ids[0]")


def test_base_model_must_resolve(api, ids):
    r = create(api, base_model="nobody/no-such-model", dataset_id=ids["sft"], method="sft")
    assert_400(r, "base_model", "nobody/no-such-model")


def test_unknown_hyperparameter_is_an_error(api, ids):
    r = create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft", hyperparameters={"learnin_rate": 1})
    assert_400(r, "hyperparameters.learnin_rate", "unknown")
    r = create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft", hyperparameters={"max_steps": "ten"})
    assert_400(r, "hyperparameters.max_steps", "number")
    r = create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft", hyperparameters={"max_steps": 0})
    assert_400(r, "hyperparameters.max_steps")


def test_every_runner_hyperparameter_is_accepted_by_the_api():
    """The API's table and the runner's must name the same knobs, or a valid knob is refused (or dropped)."""
    from tuneyard.services.hyperparameters import ALIASES, SPEC
    from tuneyard.training import KNOWN_HYPERPARAMETERS

    assert set(SPEC) == set(KNOWN_HYPERPARAMETERS)
    assert set(ALIASES.values()) <= set(SPEC)


def test_gpu_the_cluster_lacks_lists_available_shapes(api, ids):
    r = create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft", gpu={"gpu_type": "H100", "gpu_count": 1})
    assert_400(r, "gpu.type", "cpu")
    assert r.json()["error"]["code"] == "invalid_gpu_type"


def test_unknown_provider_and_destination(api, ids):
    assert_400(create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft", provider="nowhere"), "provider")
    r = create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft",
               checkpoint_destination={"type": "s3", "uri": "s3://x/y"})
    assert_400(r, "checkpoint_destination")


def test_other_orgs_dataset_is_not_found(server, api, ids):
    _, other_key = server.new_org()
    with server.client(other_key) as other:
        r = create(other, base_model=MODEL, dataset_id=ids["sft"], method="sft")
        assert r.status_code == 404


def test_nothing_is_queued_after_bad_requests(api, ids):
    create(api, base_model=MODEL, dataset_id=ids["sft"], method="dpo")
    assert api.get("/v1/training_jobs").json()["data"] == []


def test_valid_job_is_queued_with_client_shapes(api, ids):
    body = {"base_model": MODEL, "dataset_id": ids["grpo"], "output_name": "m", "method": "grpo",
            "hyperparameters": {"learning_rate": 1e-6, "max_steps": 2, "rollouts_per_prompt": 2, "kl_coef": 0.0,
                                "lora_rank": 8},
            "gpu": {"gpu_type": "cpu", "gpu_count": 1}, "checkpoint_destination": {"destination": "veri"},
            "requires_heartbeat": True, "reward_function_id": ids["rf"]}
    r = api.post("/v1/training_jobs", json=body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["id"].startswith("job_")
    assert job["gpu_requested"] == {"type": "cpu", "count": 1} and job["gpu"] is None
    assert job["hyperparameters"] == {"learning_rate": 1e-6, "max_steps": 2, "num_generations": 2, "beta": 0.0,
                                      "lora_r": 8}
    assert job["error"] is None and job["cost_usd"] == 0
    listed = api.get("/v1/training_jobs", params={"status": "queued", "method": "grpo"}).json()["data"]
    assert [j["id"] for j in listed] == [job["id"]]
    # No runner yet: the log stream says so with a 400, as the veri clients expect.
    assert api.get(f"/v1/training_jobs/{job['id']}/logs").status_code == 400
    events = api.get(f"/v1/training_jobs/{job['id']}/events").json()
    assert events["data"][0]["type"] == "job.queued"
    cancelled = api.post(f"/v1/training_jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.post(f"/v1/training_jobs/{job['id']}/cancel").status_code == 400
    r = api.get(f"/v1/training_jobs/{job['id']}/logs")
    assert r.status_code == 200 and "data: [Job cancelled]" in r.text
    assert api.get(f"/v1/training_jobs/{job['id']}/model").status_code == 400


def test_concurrent_job_limit_is_429(server, api, ids):
    limit = server.ctx.settings.max_concurrent_jobs_per_org
    for _ in range(limit):
        assert create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft").status_code == 201
    r = create(api, base_model=MODEL, dataset_id=ids["sft"], method="sft")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "concurrent_job_limit"
