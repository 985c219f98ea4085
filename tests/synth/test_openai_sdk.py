"""A full SFT round trip with the official ``openai`` SDK alone, against a real server.

Files -> fine-tuning job (real LoRA SFT on the bundled SmolLM2-135M, 2 steps) -> chat completions
(plain and streamed) and the Responses API on the ``ft:`` model and on the base model, each served
by an on-demand deployment (a real worker process) that the server starts, and unloads when idle.
One fine-tune is trained per module and shared by the tests.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                      {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(8)]
TINY = {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-4, "max_length": 64, "lora_r": 4, "seed": 1}
TERMINAL = ("succeeded", "failed", "cancelled")
# One worker process per served model; two models are served here (the fine-tune and its base).
# One torch thread per worker: on a shared 2-core machine oversubscribed threads slow decoding most.
SERVER_SETTINGS = {"inference_max_model_len": 512, "inference_default_max_tokens": 32, "cpu_deployment_slots": 2,
                   "inference_threads": 1}


@pytest.fixture(scope="module")
def client(sqlite_server) -> openai.OpenAI:
    with openai.OpenAI(base_url=sqlite_server.url + "/api/v1", api_key=sqlite_server.key, timeout=600,
                       max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def native(sqlite_server) -> httpx.Client:
    with sqlite_server.client() as c:
        c.timeout = httpx.Timeout(600)
        yield c


def wait_for(client: openai.OpenAI, job_id: str, timeout: float = 900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in TERMINAL:
            return job
        time.sleep(1)
    raise AssertionError(f"fine-tuning job {job_id} did not finish: {job}")


@pytest.fixture(scope="module")
def run(client, native):
    """Upload, start the fine-tune, start (and cancel) a second job behind it, wait for the first."""
    data = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    file = client.files.create(file=("sums.jsonl", data), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=file.id, suffix="sums", seed=1,
                                         hyperparameters=TINY, extra_body={"training_type": "sft"})
    # With one CPU job slot the second job waits behind the first; cancelling it ends it at once.
    second = client.fine_tuning.jobs.create(model=MODEL, training_file=file.id, hyperparameters={"n_epochs": 1})
    cancelled = client.fine_tuning.jobs.cancel(second.id)
    # Load the base model while the fine-tune trains (synth-ai's warmup route; also checked below).
    warming = native.post(f"/api/v1/warmup/{MODEL}").json()
    assert warming["status"] == "warming", warming
    done = wait_for(client, job.id)
    return {"file": file, "created": job, "job": done, "second": second, "cancelled": cancelled}


def test_files(client, run, native):
    f = run["file"]
    assert f.id.startswith("file-") and f.purpose == "fine-tune" and f.filename == "sums.jsonl"
    assert f.bytes == sum(len(json.dumps(r)) + 1 for r in ROWS)
    assert client.files.retrieve(f.id).id == f.id
    assert f.id in [x.id for x in client.files.list(purpose="fine-tune")]
    assert client.files.content(f.id).read().decode().splitlines()[0] == json.dumps(ROWS[0])
    # The same upload is a dataset on the native API.
    ds = native.get("/v1/datasets/ds_" + f.id.removeprefix("file-")).json()
    assert ds["format"] == "chat" and ds["num_rows"] == len(ROWS)
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("bad.jsonl", b'{"messages": []}\n'), purpose="fine-tune")
    assert "at least 2 non-empty messages" in err.value.message


def test_fine_tuning_job(client, run, native):
    created, job = run["created"], run["job"]
    assert created.id.startswith("ftjob-") and created.status == "queued"
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{MODEL}:sums"
    assert job.model == MODEL and job.training_file == run["file"].id and job.seed == 1
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.finished_at >= job.created_at
    # Same job on the native surface, with the mapped status.
    same = native.get(f"/v1/training_jobs/{job.training_job_id}").json()
    assert same["status"] == "completed" and same["output_name"] == job.fine_tuned_model
    assert same["hyperparameters"]["max_steps"] == 2 and same["method"] == "sft"
    ids = [j.id for j in client.fine_tuning.jobs.list(limit=10)]
    assert job.id in ids and run["second"].id in ids
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in events]
    assert messages[-1] == "Job queued" and "Job completed" in messages  # newest first
    assert any(e.type == "metrics" and "train_loss" in e.data for e in events)
    page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(page.data) == 2 and page.has_more
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert ckpts and ckpts[0].fine_tuned_model_checkpoint.startswith(job.fine_tuned_model + ":ckpt-step-")
    assert ckpts[0].step_number == 2
    models = client.models.list()
    assert {MODEL, job.fine_tuned_model} <= {m.id for m in models}


def test_cancel(client, run):
    assert run["cancelled"].status == "cancelled"
    second = client.fine_tuning.jobs.retrieve(run["second"].id)
    assert second.status == "cancelled" and second.fine_tuned_model is None
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(second.id)


@pytest.fixture(scope="module", params=["fine_tuned", "base"])
def served(request, run):
    return run["job"].fine_tuned_model if request.param == "fine_tuned" else MODEL


def test_chat_completions(client, served):
    r = client.chat.completions.create(model=served, max_tokens=8, temperature=0,
                                       messages=[{"role": "user", "content": "What is 3 plus 3?"}])
    assert r.object == "chat.completion" and r.model == served
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8


def test_chat_completions_stream(client, served):
    stream = client.chat.completions.create(model=served, max_tokens=8, stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Count to five."}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens > 0 and all(c.model == served for c in chunks)


def test_responses(client, served):
    r = client.responses.create(model=served, input="What is 2 plus 2?", max_output_tokens=8,
                                instructions="Answer briefly.")
    assert r.object == "response" and r.status in ("completed", "incomplete") and r.model == served
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert r.output_text.strip() and r.usage.output_tokens > 0
    events = list(client.responses.create(model=served, input=[{"role": "user", "content": "Say hi."}],
                                          max_output_tokens=6, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text and [e.sequence_number for e in events] == list(range(len(kinds)))


def test_served_by_on_demand_deployments(client, run, native):
    ft = run["job"].fine_tuned_model
    client.chat.completions.create(model=ft, max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    deps = native.get("/v1/deployments", params={"status": "serving"}).json()["data"]
    by_name = {d["name"]: d for d in deps}
    assert {ft, MODEL} <= set(by_name)
    logged = native.get(f"/v1/deployments/{by_name[ft]['id']}/requests").json()["data"]
    assert logged and all(r["status_code"] == 200 for r in logged)
    # A deployment may be named by its id too; the answer carries the deployment's (model's) name.
    r = client.chat.completions.create(model=by_name[ft]["id"], max_tokens=2,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert r.model == ft
    for prefix in ("/api/warmup", "/api/v1/warmup"):
        status = native.get(f"{prefix}/status/{ft}").json()
        assert status["status"] == "warmed" and status["deployment_id"] == by_name[ft]["id"]
        again = native.post(f"{prefix}/{MODEL}", headers={"X-GPU-Preference": "H100"}).json()
        assert again["status"] == "already_warmed" and again["gpu"] == {"type": "cpu", "count": 1}
        bad = native.post(f"{prefix}/{MODEL}", params={"gpu": "TPU-v9"})
        assert bad.status_code == 400 and "A100" in bad.json()["detail"]
        cold = native.get(f"{prefix}/status/nobody/never-loaded-1B").json()
        assert cold["status"] == "cold" and cold["model_id"] == "nobody/never-loaded-1B"


def test_gpu_preference_and_bad_inputs(client, native):
    msgs = [{"role": "user", "content": "Hi"}]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=msgs, max_tokens=2,
                                                           extra_headers={"X-GPU-Preference": "A100"})
    assert raw.headers["x-gpu-assigned"] == "cpu" and raw.parse().choices[0].message.content is not None
    r = native.post("/api/v1/chat/completions", params={"gpu": "L40S"},
                    json={"model": MODEL, "messages": msgs, "max_tokens": 2, "gpu_preference": "L40S",
                          "extra_headers": {"X-GPU-Preference": "L40S"}, "extra_body": {"x": 1},
                          "thinking_mode": "off", "some_future_field": True})
    assert r.status_code == 200, r.text
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=msgs, extra_headers={"X-GPU-Preference": "TPU-v9"})
    assert "TPU-v9" in err.value.message and "A100" in err.value.message
    for body, words in (({"messages": msgs}, "model"), ({"model": MODEL, "messages": []}, "messages"),
                        ({"model": "nobody/nothing-7B", "messages": msgs}, "nobody/nothing-7B"),
                        ({"model": MODEL, "messages": msgs, "temperature": 9}, "temperature")):
        r = native.post("/api/v1/chat/completions", json=body)
        assert r.status_code == 400, (body, r.text)
        assert words in r.json()["detail"] and r.json()["detail"] == r.json()["error"]["message"]
    for body, words in (({"model": MODEL}, "input"), ({"model": MODEL, "input": "x", "previous_response_id": "r"},
                                                        "previous_response_id")):
        r = native.post("/api/v1/responses", json=body)
        assert r.status_code == 400 and words in r.json()["detail"], r.text
    # Synth's client sends messages rather than input to /responses.
    r = native.post("/api/v1/responses", json={"model": MODEL, "messages": msgs, "max_output_tokens": 4})
    assert r.status_code == 200 and r.json()["output"][0]["type"] == "message", r.text


def test_idle_models_are_unloaded(sqlite_server, run, native):
    """Last: with a short idle time the on-demand deployments stop and the models are cold again."""
    ft = run["job"].fine_tuned_model
    sqlite_server.ctx.settings.synth_idle_unload_seconds = 1.0
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if native.get(f"/api/warmup/status/{ft}").json()["status"] == "cold":
                break
            time.sleep(1)
        assert native.get(f"/api/warmup/status/{ft}").json()["status"] == "cold"
        stopped = native.get("/v1/deployments", params={"status": "stopped"}).json()["data"]
        assert any(d["name"] == ft for d in stopped)
    finally:
        sqlite_server.ctx.settings.synth_idle_unload_seconds = 600.0


def test_delete_fine_tuned_model(client, run, native):
    """Last of all: deleting the fine-tune unlists it, ends what serves it, and removes its checkpoints."""
    job = run["job"]
    deleted = client.models.delete(job.fine_tuned_model)
    assert deleted.deleted is True and deleted.id == job.fine_tuned_model
    assert job.fine_tuned_model not in {m.id for m in client.models.list()}
    assert job.fine_tuned_model not in {m["id"] for m in native.get("/v1/models").json()["data"]}
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}])
    assert "deleted" in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.delete(job.fine_tuned_model)
    assert native.get(f"/v1/training_jobs/{job.training_job_id}/model").status_code == 400
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"  # the job itself stays
