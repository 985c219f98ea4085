"""``/v1/deployments`` at the API level, on SQLite and Postgres (no supervisor: deployments stay
queued): validation, both GPU spellings, listing with filters and cursors, organizations, stop,
and the gateway's 503 while a deployment is not serving."""

from __future__ import annotations

import time

import pytest

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def create(api, **body):
    return api.post("/v1/deployments", json={"model": MODEL, "gpu": {"gpu_type": "cpu", "gpu_count": 1}, **body})


def test_create_get_and_both_gpu_spellings(api):
    r = create(api, name="smol")
    assert r.status_code == 201, r.text
    dep = r.json()
    assert dep["id"].startswith("dep_") and dep["object"] == "deployment" and dep["status"] == "queued"
    assert dep["name"] == "smol" and dep["model"] == MODEL and dep["source"] == "huggingface"
    assert dep["gpu"] == {"type": "cpu", "count": 1} and dep["provider"] == "local"
    assert dep["endpoint_url"] is None and dep["total_requests"] == 0 and dep["error"] is None
    assert dep["created_at"].endswith("Z") and dep["started_at"] is None and dep["stopped_at"] is None
    other = create(api, gpu={"type": "CPU", "count": 1}, source="huggingface").json()
    assert other["gpu"] == {"type": "cpu", "count": 1} and other["name"] == "SmolLM2-135M-Instruct"
    flat = api.post("/v1/deployments", json={"model": "smollm2-135m", "gpu_type": "cpu", "gpu_count": 1}).json()
    assert flat["base_model"] == MODEL
    assert api.get(f"/v1/deployments/{dep['id']}").json() == api.get(f"/v1/deployments/{dep['id']}").json()
    events = api.get(f"/v1/deployments/{dep['id']}/events").json()["data"]
    assert [e["type"] for e in events][:1] == ["deployment.queued"]


@pytest.mark.parametrize("body,param,code", [
    ({"model": "no-such/model"}, "model", "model_not_found"),
    ({"model": "job_0123456789abcdef01234567"}, "model", "not_found"),
    ({"model": ""}, "model", None),
    ({"source": "s3"}, "source", None),
    ({"gpu": {"gpu_type": "H100", "gpu_count": 1}}, "gpu.type", "invalid_gpu_type"),
    ({"gpu": {"gpu_type": "cpu", "gpu_count": 0}}, "gpu.count", None),
    ({"provider": "aws"}, "provider", "invalid_provider"),
    ({"engine": "vllm"}, "engine", None),
    ({"engine": "tgi"}, "engine", None),
    ({"max_batch_size": 0}, "max_batch_size", None),
])
def test_invalid_creations(api, body, param, code):
    r = create(api, **body)
    assert r.status_code in (400, 404, 422), r.text
    err = r.json()["error"]
    assert err["message"] and err["param"] == param, err
    if code:
        assert err["code"] == code


def test_a_training_job_that_has_not_completed_cannot_be_deployed(api, server):
    import io
    import json

    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 2
    ds = api.post("/v1/datasets", files={"file": ("c.jsonl", io.BytesIO("\n".join(json.dumps(r) for r in rows)
                                                                         .encode()), "application/jsonl")}).json()
    job = api.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": ds["id"], "method": "sft",
                                              "output_name": "later"}).json()
    for model in (job["id"], "later"):
        r = create(api, model=model, source="training_job")
        assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_ready", r.text


def test_list_filters_and_pages(api):
    ids = [create(api, name=f"d{i}").json()["id"] for i in range(3)]
    api.post(f"/v1/deployments/{ids[0]}/stop")
    page1 = api.get("/v1/deployments", params={"limit": 2}).json()
    assert page1["object"] == "list" and page1["has_more"] is True and [d["id"] for d in page1["data"]] == ids[:0:-1]
    page2 = api.get("/v1/deployments", params={"limit": 2, "after": page1["data"][-1]["id"]}).json()
    assert [d["id"] for d in page2["data"]] == [ids[0]] and page2["has_more"] is False
    queued = api.get("/v1/deployments", params={"status": "queued"}).json()["data"]
    assert [d["id"] for d in queued] == ids[:0:-1]
    assert [d["id"] for d in api.get("/v1/deployments", params={"status": "stopped"}).json()["data"]] == [ids[0]]
    assert api.get("/v1/deployments", params={"status": "sleeping"}).status_code == 400
    assert api.get("/v1/deployments", params={"after": "dep_nope"}).status_code == 400


def test_other_organizations_see_404(api, server):
    dep = create(api).json()
    _, key = server.new_org()
    with server.client(key) as other:
        for method, path in [("GET", ""), ("POST", "/stop"), ("GET", "/requests"), ("GET", "/metrics"),
                             ("GET", "/events"), ("POST", "/chat/completions")]:
            r = other.request(method, f"/v1/deployments/{dep['id']}{path}", json={} if method == "POST" else None)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["error"]["type"] == "not_found_error"
        assert other.get("/v1/deployments").json()["data"] == []


def test_stop_without_a_body_and_twice(api):
    dep = create(api).json()
    r = api.post(f"/v1/deployments/{dep['id']}/stop")  # no body, no content type
    assert r.status_code == 200 and r.json()["status"] == "stopped" and r.json()["stopped_at"]
    again = api.post(f"/v1/deployments/{dep['id']}/stop")
    assert again.status_code == 400 and again.json()["error"]["code"] == "deployment_terminal"
    types = [e["type"] for e in api.get(f"/v1/deployments/{dep['id']}/events").json()["data"]]
    assert types[:2] == ["deployment.queued", "deployment.stopped"]  # (billing may add its own events)


def test_not_serving_is_503_with_retry_after_and_is_logged(api):
    dep = create(api).json()
    r = api.post(f"/v1/deployments/{dep['id']}/chat/completions",
                 json={"model": "x", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert r.json()["error"]["code"] == "deployment_waking" and "queued" in r.json()["error"]["message"]
    api.post(f"/v1/deployments/{dep['id']}/stop")
    r = api.post(f"/v1/deployments/{dep['id']}/chat/completions", json={"messages": []})
    assert r.status_code == 503 and r.json()["error"]["code"] == "deployment_not_serving"
    deadline = time.time() + 10
    while True:  # the request log is written off the request path, in batches
        logs = api.get(f"/v1/deployments/{dep['id']}/requests").json()["data"]
        if len(logs) == 2 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert [row["status_code"] for row in logs] == [503, 503] and all(row["error_message"] for row in logs)
    assert api.get(f"/v1/deployments/{dep['id']}/requests", params={"errors_only": True}).json()["data"]
    assert api.get(f"/v1/deployments/{dep['id']}/requests", params={"from": "yesterday"}).status_code == 400
    m = api.get(f"/v1/deployments/{dep['id']}/metrics").json()
    assert m["requests"]["last_24h"] == 2 and m["error_rate"] == 1.0 and m["latency_ms"]["p50"] is None
    assert api.get(f"/v1/deployments/{dep['id']}").json()["total_requests"] == 2


def test_missing_key_is_401(server):
    with server.client("vk_wrong") as c:
        assert c.get("/v1/deployments").status_code == 401
        assert c.post("/v1/deployments/dep_x/chat/completions", json={}).status_code == 401
