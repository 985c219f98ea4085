"""The /api/v1 surface over raw HTTP: files, fine-tuning jobs, models, balance, bad inputs.

No scheduler runs here (the ``server`` fixture), so jobs stay queued: these tests check the
mapping onto the core services, on SQLite and on Postgres. Real training is in test_openai_sdk.py.
"""

from __future__ import annotations

import io
import json

import httpx
import pytest

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
CHAT = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
        for i in range(4)]
PREFS = [{"prompt": f"Say {i}.", "chosen": f"{i}.", "rejected": "No."} for i in range(4)]
SERVER_SETTINGS = {"max_concurrent_jobs_per_org": 50}


def jsonl(rows) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def upload(api: httpx.Client, rows, *, purpose_in_query: bool = False, name: str = "train.jsonl") -> dict:
    files = {"file": (name, io.BytesIO(jsonl(rows)), "application/octet-stream")}
    if purpose_in_query:
        r = api.post("/api/v1/files", params={"purpose": "fine-tune"}, files=files)
    else:
        r = api.post("/api/v1/files", data={"purpose": "fine-tune"}, files=files)
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["detail"] == body["error"]["message"]
    for w in words:
        assert w in body["detail"], body
    return body


def test_files_are_datasets(api):
    f = upload(api, CHAT)
    assert f["id"].startswith("file-") and f["object"] == "file"
    assert f["purpose"] == "fine-tune" and f["filename"] == "train.jsonl" and f["status"] == "processed"
    assert isinstance(f["created_at"], int) and f["bytes"] == len(jsonl(CHAT))
    q = upload(api, PREFS, purpose_in_query=True, name="prefs.jsonl")
    # The same rows on the native surface.
    ds = api.get(f"/v1/datasets/{f['dataset_id']}").json()
    assert ds["format"] == "chat" and ds["num_rows"] == 4 and ds["filename"] == "train.jsonl"
    assert {d["id"] for d in api.get("/v1/datasets").json()["data"]} >= {f["dataset_id"], q["dataset_id"]}
    listed = api.get("/api/v1/files", params={"purpose": "fine-tune"}).json()
    assert [x["id"] for x in listed["data"]][:2] == [q["id"], f["id"]] and listed["object"] == "list"
    assert api.get("/api/v1/files", params={"purpose": "assistants"}).json()["data"] == []
    assert api.get(f"/api/v1/files/{f['id']}").json()["id"] == f["id"]
    assert api.get(f"/api/v1/files/{f['id']}/content").content == jsonl(CHAT)
    r = api.delete(f"/api/v1/files/{q['id']}")
    assert r.json() == {"id": q["id"], "object": "file", "deleted": True}
    assert_error(api.get(f"/api/v1/files/{q['id']}"), 404, q["id"])
    assert api.get(f"/v1/datasets/{q['dataset_id']}").status_code == 404


def test_bad_files(api):
    def post(content: bytes, data=None, params=None):
        return api.post("/api/v1/files", data=data if data is not None else {"purpose": "fine-tune"}, params=params,
                        files={"file": ("x.jsonl", io.BytesIO(content), "application/jsonl")})

    assert_error(post(b'{"messages": [{"role": "user", "content": "only one"}]}\n'), 400, "line 1",
                 "at least 2 non-empty messages")
    assert_error(post(b"not json\n"), 400, "line 1", "JSON")
    assert_error(post(jsonl(CHAT), data={}), 400, "purpose")
    assert_error(post(jsonl(CHAT), data={"purpose": "assistants"}), 400, "fine-tune")
    assert_error(api.post("/api/v1/files", data={"purpose": "fine-tune"}), 400, "file")
    assert_error(api.get("/api/v1/files/file-doesnotexist"), 404, "file-doesnotexist")


def test_fine_tuning_job_is_a_training_job(api):
    f = upload(api, CHAT)
    v = upload(api, CHAT, name="valid.jsonl")
    r = api.post("/api/v1/fine_tuning/jobs", json={
        "model": MODEL, "training_file": f["id"], "validation_file": v["id"], "suffix": "my-model", "seed": 7,
        "hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": 0.5, "lora_r": 4,
                            "use_qlora": False, "max_steps": 2},
        "training_type": "sft", "integrations": [], "extra_field_from_a_newer_client": True})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["id"].startswith("ftjob-") and job["object"] == "fine_tuning.job"
    assert job["status"] == "queued" and job["model"] == MODEL and job["fine_tuned_model"] is None
    assert job["training_file"] == f["id"] and job["validation_file"] == v["id"]
    assert job["seed"] == 7 and job["user_provided_suffix"] == "my-model"
    hp = job["hyperparameters"]
    assert hp["n_epochs"] == 2 and hp["batch_size"] == "auto" and hp["learning_rate_multiplier"] == 0.5
    assert hp["learning_rate"] == pytest.approx(1e-4)  # half of the SFT LoRA default
    assert job["method"]["type"] == "supervised"
    assert isinstance(job["created_at"], int) and isinstance(job["estimated_finish"], int)
    native = api.get(f"/v1/training_jobs/{job['training_job_id']}").json()
    assert native["id"] == "job_" + job["id"].removeprefix("ftjob-")
    assert native["method"] == "sft" and native["dataset_id"] == f["dataset_id"]
    assert native["output_name"] == f"ft:{MODEL}:my-model"
    assert native["hyperparameters"]["num_epochs"] == 2 and native["hyperparameters"]["lora_r"] == 4
    assert api.get(f"/api/v1/fine_tuning/jobs/{job['id']}").json()["id"] == job["id"]
    # The native id works here too.
    assert api.get(f"/api/v1/fine_tuning/jobs/{native['id']}").json()["id"] == job["id"]

    # DPO through OpenAI's method object.
    p = upload(api, PREFS, name="prefs.jsonl")
    r = api.post("/api/v1/fine_tuning/jobs", json={
        "model": MODEL, "training_file": p["id"],
        "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "max_steps": 1}}}})
    assert r.status_code == 200, r.text
    dpo = r.json()
    assert dpo["method"]["type"] == "dpo" and dpo["hyperparameters"]["beta"] == 0.2
    assert dpo["fine_tuned_model"] is None
    assert api.get(f"/v1/training_jobs/{dpo['training_job_id']}").json()["method"] == "dpo"

    listed = api.get("/api/v1/fine_tuning/jobs", params={"limit": 1}).json()
    assert [j["id"] for j in listed["data"]] == [dpo["id"]] and listed["has_more"] is True
    rest = api.get("/api/v1/fine_tuning/jobs", params={"limit": 10, "after": dpo["id"]}).json()
    assert [j["id"] for j in rest["data"]] == [job["id"]] and rest["has_more"] is False

    cancelled = api.post(f"/api/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.get(f"/v1/training_jobs/{job['training_job_id']}").json()["status"] == "cancelled"
    assert_error(api.post(f"/api/v1/fine_tuning/jobs/{job['id']}/cancel"), 400, "cancelled")

    events = api.get(f"/api/v1/fine_tuning/jobs/{job['id']}/events").json()
    assert events["object"] == "list"
    assert [e["object"] for e in events["data"]] == ["fine_tuning.job.event"] * len(events["data"])
    messages = [e["message"] for e in events["data"]]  # newest first
    assert any(m.startswith("Job cancelled") for m in messages[:2])
    assert events["data"][-1]["message"] == "Job queued"
    first = api.get(f"/api/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 1}).json()
    assert first["has_more"] is True and first["data"][0]["id"] == events["data"][0]["id"]
    older = api.get(f"/api/v1/fine_tuning/jobs/{job['id']}/events",
                    params={"limit": 100, "after": first["data"][0]["id"]}).json()
    assert [e["id"] for e in older["data"]] == [e["id"] for e in events["data"][1:]]
    # A terminal job's event stream replays everything, then ends.
    with api.stream("GET", f"/api/v1/fine_tuning/jobs/{job['id']}/events", params={"stream": "true"}) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        payloads = [line[5:].strip() for line in s.iter_lines() if line.startswith("data:")]
    assert payloads[-1] == "[DONE]"
    assert [json.loads(p)["id"] for p in payloads[:-1]] == [e["id"] for e in reversed(events["data"])]
    ckpts = api.get(f"/api/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()
    assert ckpts == {"object": "list", "data": [], "has_more": False, "first_id": None, "last_id": None}


def test_fine_tuning_bad_inputs(api):
    f = upload(api, CHAT)
    p = upload(api, PREFS, name="prefs.jsonl")

    def create(**body):
        return api.post("/api/v1/fine_tuning/jobs", json={"model": MODEL, "training_file": f["id"], **body})

    body = assert_error(create(model="Qwen/Qwen3-4B-Instruct-2507"), 400, "Qwen/Qwen3-4B-Instruct-2507", MODEL)
    assert body["error"]["param"] == "model"
    assert_error(create(training_file="file-nope"), 404, "file-nope")
    assert_error(create(hyperparameters={"n_epochs": "many"}), 400, "n_epochs")
    assert_error(create(hyperparameters={"warp_factor": 9}), 400, "warp_factor")
    assert_error(create(hyperparameters={"learning_rate_multiplier": -1}), 400, "learning_rate_multiplier")
    assert_error(create(training_type="grpo"), 400, "training_type")
    assert_error(create(method={"type": "reinforcement"}), 400, "reinforcement")
    assert_error(create(training_type="dpo"), 400, "preference")  # a chat file cannot train DPO
    assert_error(create(training_file=p["id"]), 400, "chat")  # nor a preference file SFT
    assert_error(create(suffix="no spaces allowed"), 400, "suffix")
    assert_error(api.post("/api/v1/fine_tuning/jobs", json={"model": MODEL}), 400, "training_file")
    assert_error(api.post("/api/v1/fine_tuning/jobs", content=b"{not json",
                          headers={"content-type": "application/json"}), 400, "JSON")
    assert_error(api.get("/api/v1/fine_tuning/jobs/ftjob-nope"), 404, "ftjob-nope")
    assert_error(api.get("/api/v1/fine_tuning/jobs", params={"limit": 0}), 400, "limit")
    assert_error(api.get("/api/v1/fine_tuning/jobs", params={"after": "ftjob-nope"}), 400, "ftjob-nope")


def test_gpu_preference_on_fine_tuning(api):
    f = upload(api, CHAT)
    base = {"model": MODEL, "training_file": f["id"]}
    # A known GPU this CPU box lacks is a preference: the job runs on what is here, and says so.
    r = api.post("/api/v1/fine_tuning/jobs", json=base, headers={"X-GPU-Preference": "A100"})
    assert r.status_code == 200, r.text
    assert r.json()["gpu"] == {"type": "cpu", "count": 1}
    for kw in ({"params": {"gpu": "L40S"}, "json": base}, {"json": {**base, "gpu_preference": "H100"}},
               {"json": {**base, "gpu": {"gpu_type": "cpu", "gpu_count": 1}}}):
        r = api.post("/api/v1/fine_tuning/jobs", **kw)
        assert r.status_code == 200, (kw, r.text)
        assert r.json()["gpu"] == {"type": "cpu", "count": 1}
    body = assert_error(api.post("/api/v1/fine_tuning/jobs", json=base, headers={"X-GPU-Preference": "TPU-v9"}),
                        400, "TPU-v9", "A100", "L40S", "H100")
    assert body["error"]["code"] == "unsupported_gpu"


def test_models_list(api):
    body = api.get("/api/v1/models").json()
    assert body["object"] == "list" and MODEL in [m["id"] for m in body["data"]]
    assert all(m["object"] == "model" and "owned_by" in m and "created" in m for m in body["data"])
    assert MODEL in body["available_models"] and body["fine_tuned_models"] == []
    assert {"type": "cpu", "count": 1} in body["gpus"]["available"] and "A100" in body["gpus"]["supported"]
    assert body["organization_id"].startswith("org_")
    assert api.get(f"/api/v1/models/{MODEL}").json()["id"] == MODEL
    assert_error(api.get("/api/v1/models/ft:nothing:here"), 404, "ft:nothing:here")
    assert_error(api.delete(f"/api/v1/models/{MODEL}"), 400, "base model")


@pytest.mark.parametrize("prefix", ["/api/v1/balance", "/api/balance"])
def test_balance(api, prefix):
    cur = api.get(f"{prefix}/current").json()
    assert cur["balance_cents"] == 10000 and cur["balance_dollars"] == 100.0
    assert cur["organization_id"].startswith("org_") and cur["last_updated"].endswith("Z")
    native = api.get("/v1/billing/balance").json()
    assert native["balance_usd"] * 100 == cur["balance_cents"] and native["org_id"] == cur["organization_id"]
    usage = api.get(f"{prefix}/usage").json()
    for window in ("current_month", "last_30_days"):
        assert usage[window] == {"token_spend_cents": 0, "gpu_spend_cents": 0, "total_spend_cents": 0,
                                 "token_count": 0, "gpu_hours": 0}
    windows = api.get(f"{prefix}/usage/windows", params={"hours": "24,168"}).json()["windows"]
    assert [w["window_hours"] for w in windows] == [24, 168] and windows[0]["total_spend_cents"] == 0
    assert_error(api.get(f"{prefix}/usage/windows", params={"hours": "soon"}), 400, "hours")


def test_auth_errors_carry_detail(server):
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        for path in ("/api/v1/balance/current", "/api/balance/current", "/api/v1/models", "/api/v1/files"):
            body = assert_error(anon.get(path), 401)
            assert body["detail"]
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": "Bearer vk_wrong"}) as bad:
        assert_error(bad.get("/api/v1/fine_tuning/jobs"), 401)


def test_bad_inference_requests_load_nothing(api):
    """Invalid chat/responses bodies are refused before any model is loaded (no deployment is queued)."""
    msgs = [{"role": "user", "content": "Hi"}]
    cases = [("/api/v1/chat/completions", {"model": MODEL, "messages": "hi"}, "messages"),
             ("/api/v1/chat/completions", {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "role"),
             ("/api/v1/chat/completions", {"model": MODEL, "messages": msgs, "n": 0}, "n"),
             ("/api/v1/chat/completions", {"model": 5, "messages": msgs}, "model"),
             ("/api/v1/chat/completions", {"model": MODEL, "messages": msgs, "gpu_preference": "TPU-v9"}, "TPU-v9"),
             ("/api/v1/responses", {"model": MODEL, "input": 5}, "input"),
             ("/api/v1/responses", {"model": MODEL, "input": [{"type": "input_image"}]}, "input_image"),
             ("/api/v1/responses", {"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "web_search"),
             ("/api/v1/responses", {"model": MODEL, "input": "x", "temperature": "hot"}, "temperature")]
    for path, body, word in cases:
        assert_error(api.post(path, json=body), 400, word)
    assert_error(api.post("/api/v1/chat/completions", json={"model": "nobody/nothing-7B", "messages": msgs}), 400,
                 "nobody/nothing-7B")
    assert api.get("/v1/deployments").json()["data"] == []
    # With no supervisor on this server a warmup queues the deployment, and its status says so.
    warm = api.post(f"/api/warmup/{MODEL}", headers={"X-GPU-Preference": "A100"}).json()
    assert warm["status"] == "warming" and warm["gpu"] == {"type": "cpu", "count": 1}
    assert warm["gpu_preference"] == "A100-80GB" and warm["gpu_preference_honoured"] is False
    assert api.post(f"/api/v1/warmup/{MODEL}").json()["status"] == "already_warming"
    status = api.get(f"/api/v1/warmup/status/{MODEL}").json()
    assert status["status"] == "warming" and status["deployment_id"] == warm["deployment_id"]
    dep = api.get(f"/v1/deployments/{warm['deployment_id']}").json()
    assert dep["name"] == MODEL and dep["status"] == "queued"
    assert_error(api.post("/api/warmup/nobody/nothing-7B"), 400, "nobody/nothing-7B")
