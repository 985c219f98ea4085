"""Deployments end to end: a real LoRA fine-tune and the base model served by real worker
processes, called through the official ``openai`` SDK; errors, stop, batching, disconnects, logs,
metrics, and a server restart."""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import datetime, timezone

import httpx
import openai
import pytest

from tests.conftest import ServeProcess
from tests.deploy_helpers import (MODEL, SERVER_SETTINGS, poll, stop_all, train_lora, wait_deployment,  # noqa: F401
                                  worker_pids)

GPU = {"gpu_type": "cpu", "gpu_count": 1}  # the veri spelling; returned as {type, count}


@pytest.fixture(scope="module")
def client(sqlite_server):
    with sqlite_server.client() as c:
        yield c
        stop_all(c, sqlite_server.ctx.settings.data_dir)


@pytest.fixture(scope="module")
def lora(client):
    """A real SFT job's LoRA adapter, deployed by job id."""
    job = train_lora(client, "dep-lora")
    r = client.post("/v1/deployments", json={"model": job["id"], "name": "lora-dep", "source": "training_job",
                                             "gpu": GPU})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "queued" and r.json()["endpoint_url"] is None
    return job, wait_deployment(client, r.json()["id"])


@pytest.fixture(scope="module")
def base(client):
    """The base model, deployed by name (the `huggingface` source)."""
    r = client.post("/v1/deployments", json={"model": MODEL, "name": "base-dep", "source": "huggingface",
                                             "gpu": {"type": "cpu", "count": 1}})
    assert r.status_code == 201, r.text
    return wait_deployment(client, r.json()["id"])


def sdk(server, dep: dict, key: str | None = None) -> openai.OpenAI:
    """The official client pointed at the deployment (its endpoint URL minus /chat/completions)."""
    base_url = dep["endpoint_url"].removesuffix("/chat/completions")
    return openai.OpenAI(base_url=base_url, api_key=key or server.key, timeout=120, max_retries=0)


def test_lora_fine_tune_answers_through_the_openai_sdk(sqlite_server, client, lora):
    job, dep = lora
    assert dep["status"] == "serving", dep
    assert dep["object"] == "deployment" and dep["model"] == job["id"] and dep["source"] == "training_job"
    assert dep["adapter"] is True and dep["base_model"] == MODEL and dep["training_job_id"] == job["id"]
    assert dep["gpu"] == {"type": "cpu", "count": 1} and dep["provider"] == "local"
    assert dep["endpoint_url"] == f"{sqlite_server.url}/v1/deployments/{dep['id']}/chat/completions"
    assert dep["started_at"] and dep["cost_per_hour_usd"] is not None and dep["total_cost_usd"] is not None
    oa = sdk(sqlite_server, dep)

    done = oa.chat.completions.create(model="lora-dep", messages=[{"role": "user", "content": "What is 3 plus 3?"}],
                                      max_tokens=8, temperature=0)
    assert done.object == "chat.completion" and done.model == "lora-dep"
    assert isinstance(done.choices[0].message.content, str) and done.choices[0].message.content
    assert done.choices[0].finish_reason in ("stop", "length")
    assert done.usage.prompt_tokens > 0 and 0 < done.usage.completion_tokens <= 8
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens

    stream = oa.chat.completions.create(model=dep["id"], messages=[{"role": "user", "content": "What is 3 plus 3?"}],
                                        max_tokens=8, temperature=0, stream=True,
                                        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == done.choices[0].message.content  # greedy: the same answer, streamed
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == done.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == done.usage.completion_tokens

    # The worker really serves the job's adapter on the base model.
    engine = client.get(f"/v1/deployments/{dep['id']}/metrics").json()["engine"]
    assert engine["name"] == "transformers" and engine["adapters"] == [dep["id"]]


def test_base_model_deployment_batches_concurrent_requests(sqlite_server, client, base):
    assert base["status"] == "serving" and base["adapter"] is False and base["source"] == "huggingface"
    oa = sdk(sqlite_server, base)
    results, errors = [], []

    def one(i):
        try:
            s = oa.chat.completions.create(model="base-dep", messages=[{"role": "user", "content": f"Count to {i}"}],
                                           max_tokens=12, stream=True, extra_body={"ignore_eos": True})
            results.append(sum(1 for c in s if c.choices and c.choices[0].delta.content))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(results) == 6 and all(n > 0 for n in results), (errors, results)
    # The engine figures are the worker's stats as of the last health check: wait for one taken after
    # the requests ended.
    finished = datetime.now(timezone.utc)
    metrics = poll(lambda: client.get(f"/v1/deployments/{base['id']}/metrics").json(),
                   lambda m: datetime.fromisoformat(m["health"]["last_check_at"].replace("Z", "+00:00")) > finished,
                   timeout=30)
    engine = metrics["engine"]
    assert engine["requests"] >= 6, engine
    assert engine["max_batch_size"] > 1, engine  # requests shared decode steps


def test_openai_schema_features(sqlite_server, base):
    oa = sdk(sqlite_server, base)
    ask = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Describe a cat in JSON."}]

    as_json = oa.chat.completions.create(model="base-dep", messages=ask, max_tokens=24,
                                         response_format={"type": "json_object"})
    assert isinstance(json.loads(as_json.choices[0].message.content), dict)

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    called = oa.chat.completions.create(model="base-dep", max_tokens=48, tools=tools,
                                        messages=[{"role": "user", "content": "Weather in Paris?"}],
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert isinstance(json.loads(call.function.arguments), dict)
    # The tool result goes back in, and the model answers in text.
    follow = oa.chat.completions.create(model="base-dep", max_tokens=6, tools=tools, tool_choice="none", messages=[
        {"role": "user", "content": "Weather in Paris?"}, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}])
    assert follow.choices[0].message.tool_calls is None and follow.choices[0].message.content

    many = oa.chat.completions.create(model="base-dep", messages=ask, max_tokens=6, n=2, seed=7, temperature=1.0)
    again = oa.chat.completions.create(model="base-dep", messages=ask, max_tokens=6, n=2, seed=7, temperature=1.0)
    assert [c.index for c in many.choices] == [0, 1]
    assert [c.message.content for c in many.choices] == [c.message.content for c in again.choices]

    stopped = oa.chat.completions.create(model="base-dep", messages=[{"role": "user", "content": "Count to 9: 1, 2,"}],
                                         max_tokens=16, temperature=0, stop=["4"], presence_penalty=0.5,
                                         frequency_penalty=0.5, max_completion_tokens=16)
    assert "4" not in stopped.choices[0].message.content and stopped.choices[0].finish_reason in ("stop", "length")


def test_invalid_requests_get_openai_400s(sqlite_server, base):
    oa = sdk(sqlite_server, base)
    cases = [({"temperature": 3}, "temperature"), ({"n": 0}, "n"), ({"stream_options": {"include_usage": True}},
             "stream_options"), ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
             ({"max_tokens": 10 ** 6}, "messages")]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            oa.chat.completions.create(model="base-dep", messages=[{"role": "user", "content": "hi"}],
                                       **({"max_tokens": 4} | extra))
        body = err.value.body
        assert body["type"] == "invalid_request_error" and body["param"] == param and body["message"], body
    with pytest.raises(openai.BadRequestError):
        oa.chat.completions.create(model="base-dep", messages=[{"role": "wizard", "content": "hi"}])
    # Unknown fields are ignored.
    ok = oa.chat.completions.create(model="base-dep", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                    extra_body={"no_such_field": 1, "gpu_preference": "A100"})
    assert ok.usage.completion_tokens <= 2


def test_other_organization_gets_404(sqlite_server, base):
    _, other_key = sqlite_server.new_org()
    with pytest.raises(openai.NotFoundError):
        sdk(sqlite_server, base, other_key).chat.completions.create(
            model="base-dep", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    with sqlite_server.client(other_key) as other:
        assert other.get(f"/v1/deployments/{base['id']}").status_code == 404
        assert other.post(f"/v1/deployments/{base['id']}/stop").status_code == 404
        assert other.get(f"/v1/deployments/{base['id']}/requests").status_code == 404


def test_client_disconnect_frees_the_slot_at_once(sqlite_server, client, base):
    url = f"{base['endpoint_url']}"
    headers = {"Authorization": f"Bearer {sqlite_server.key}"}
    body = {"messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 1500, "stream": True,
            "ignore_eos": True}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        while not next(lines).startswith("data: {"):
            pass
    # Generation stops long before 1500 tokens: the engine aborted the request and freed its slot.
    engine = poll(lambda: client.get(f"/v1/deployments/{base['id']}/metrics").json()["engine"],
                  lambda e: e.get("aborted", 0) >= 1 and e.get("active") == 0, timeout=30)
    assert engine["tokens_generated"] < 1000
    log = poll(lambda: client.get(f"/v1/deployments/{base['id']}/requests", params={"limit": 1}).json()["data"],
               lambda d: d and d[0]["client_disconnected"], timeout=10)
    assert log[0]["streamed"] is True


def test_request_logs_and_metrics(client, base):
    dep_id = base["id"]
    rows = poll(lambda: client.get(f"/v1/deployments/{dep_id}/requests").json()["data"], lambda d: len(d) >= 10)
    fields = {"id", "status_code", "latency_ms", "ttft_ms", "tpot_ms", "prompt_tokens", "completion_tokens",
              "streamed", "finish_reason", "error_message", "client_disconnected", "created_at", "completed_at"}
    assert fields <= set(rows[0])
    ok = [r for r in rows if r["status_code"] == 200 and not r["client_disconnected"]]
    streamed = [r for r in ok if r["streamed"]]
    assert streamed and all(r["ttft_ms"] > 0 and r["completion_tokens"] > 0 for r in streamed)
    assert any(r["tpot_ms"] for r in streamed)
    errors = client.get(f"/v1/deployments/{dep_id}/requests", params={"errors_only": "true"}).json()["data"]
    assert errors and all(r["status_code"] >= 400 and r["error_message"] for r in errors)
    first = client.get(f"/v1/deployments/{dep_id}/requests", params={"limit": 2}).json()
    second = client.get(f"/v1/deployments/{dep_id}/requests", params={"limit": 2, "after": first["data"][-1]["id"]})
    assert first["has_more"] and not {r["id"] for r in first["data"]} & {r["id"] for r in second.json()["data"]}
    future = client.get(f"/v1/deployments/{dep_id}/requests", params={"from": "2999-01-01T00:00:00Z"}).json()
    assert future["data"] == []

    m = client.get(f"/v1/deployments/{dep_id}/metrics").json()
    assert m["object"] == "deployment.metrics" and m["status"] == "serving" and m["uptime_seconds"] > 0
    assert m["requests"]["lifetime"] >= len(rows) and m["tokens"]["lifetime_completion"] > 0
    assert m["latency_ms"]["p50"] > 0 and m["latency_ms"]["p95"] >= m["latency_ms"]["p50"]
    assert m["ttft_ms"]["p50"] > 0 and 0 < m["error_rate"] < 1
    assert m["requests_per_second"] > 0 and m["tokens_per_second"] > 0 and m["health"]["status"] == "healthy"
    assert "total_cost_usd" in m["cost"]
    dep = client.get(f"/v1/deployments/{dep_id}").json()
    assert dep["total_requests"] == m["requests"]["lifetime"]


def test_stop_ends_the_worker_and_refuses_requests(sqlite_server, client, base):
    pids = worker_pids(base["id"])
    assert len(pids) == 1
    r = client.post(f"/v1/deployments/{base['id']}/stop")  # no body, as the clients send it
    assert r.status_code == 200 and r.json()["status"] == "stopped" and r.json()["stopped_at"]
    assert r.json()["endpoint_url"] is None
    chat = client.post(base["endpoint_url"], json={"messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 503 and chat.headers["retry-after"]
    assert chat.json()["error"]["code"] == "deployment_not_serving"
    poll(lambda: worker_pids(base["id"]), lambda p: not p, timeout=30)
    assert client.post(f"/v1/deployments/{base['id']}/stop").status_code == 400
    listed = client.get("/v1/deployments", params={"status": "stopped"}).json()["data"]
    assert base["id"] in [d["id"] for d in listed]
    types = [e["type"] for e in client.get(f"/v1/deployments/{base['id']}/events").json()["data"]]
    for expected in ("deployment.queued", "deployment.provisioning", "worker.started", "deployment.serving",
                     "deployment.stopped", "worker.stopped"):
        assert expected in types, types


def test_deployment_survives_a_server_restart_and_a_worker_crash(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = {"TUNEYARD_INFERENCE_THREADS": "1", "TUNEYARD_DEPLOYMENT_HEALTH_INTERVAL_SECONDS": "1"}
    srv = ServeProcess(data, env=env).start()
    try:
        with srv.client() as c:
            dep = c.post("/v1/deployments", json={"model": MODEL, "name": "durable", "gpu": GPU}).json()
            dep = wait_deployment(c, dep["id"])
            assert dep["status"] == "serving", dep
        [pid] = worker_pids(dep["id"])
        srv.kill()  # SIGKILL: no shutdown hooks
        assert worker_pids(dep["id"]) == [pid], "the worker outlives the server"
        srv = ServeProcess(data, env=env, port=srv.port).start()
        with srv.client() as c:
            types = poll(lambda: [e["type"] for e in c.get(f"/v1/deployments/{dep['id']}/events").json()["data"]],
                         lambda t: "worker.reattached" in t, timeout=90)
            assert c.get(f"/v1/deployments/{dep['id']}").json()["status"] == "serving"
            assert worker_pids(dep["id"]) == [pid]
            answer = c.post(dep["endpoint_url"], json={"messages": [{"role": "user", "content": "hi"}],
                                                       "max_tokens": 3})
            assert answer.status_code == 200, answer.text
            os.kill(pid, signal.SIGKILL)  # the worker crashes: the supervisor restarts it
            back = poll(lambda: c.get(f"/v1/deployments/{dep['id']}").json(),
                        lambda d: d["status"] == "serving" and d["restarts"] == 1, timeout=240, interval=1)
            assert worker_pids(dep["id"]) and worker_pids(dep["id"]) != [pid]
            assert c.post(back["endpoint_url"], json={"messages": [{"role": "user", "content": "hi"}],
                                                      "max_tokens": 3}).status_code == 200
            stop_all(c, data)
        assert "deployment.provisioning" in types
    finally:
        srv.kill()
        for p in worker_pids(str(data)):
            os.kill(p, signal.SIGKILL)
