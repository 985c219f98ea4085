"""synth-ai 0.2.6's job clients against a real ``tuneyard serve``: the ``/api`` aliases of B.6.

``synth_ai.jobs.client.JobsClient`` calls ``/api/files``, ``/api/sft/jobs`` and ``/api/models``;
``synth_ai.learning`` (``LearningClient``, ``FtClient``, ``JobHandle``, ``stream_job_events``) calls
``/api/learning/files|jobs`` (and ``/api/learning/models`` in later versions). tuneyard mounts its
``/api/v1`` handlers at those prefixes too (api/synth/__init__.py). The clients run from their own venv
(tests/synth/synth_env.py); one script drives all of them, so the heavy imports are paid once. Jobs are
cancelled as soon as they exist: nothing here waits for training.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_env

from tests.conftest import ServeProcess

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                      {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(6)]
# Never meant to finish: every job is cancelled right after it is created.
HYPER = {"max_steps": 50, "batch_size": 2, "learning_rate": 5e-4, "max_length": 64, "lora_r": 4}

SCRIPT = r'''
import asyncio, json, sys
sys.modules["openai_harmony"] = None  # it would download a vocab file at import (no network here)
from synth_ai.http import AsyncHttpClient, HTTPError
from synth_ai.jobs.client import JobsClient
from synth_ai.learning import FtClient, JobHandle, LearningClient, stream_job_events

URL, KEY, MODEL, DATA = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
HYPER = json.loads(sys.argv[5])

def err(e):
    return {"status": e.status, "detail": e.detail}

async def jobs_client(out):
    content = open(DATA, "rb").read()
    async with JobsClient(URL, KEY) as c:  # base URL without /api: the client adds it
        f = await c.files.upload(filename="sums.jsonl", content=content, purpose="fine-tune",
                                 content_type="application/jsonl")
        spare = await c.files.upload(filename="spare.jsonl", content=content, purpose="fine-tune")
        out["file"] = f
        out["files_list"] = await c.files.list(purpose="fine-tune", limit=10)
        out["file_get"] = await c.files.retrieve(f["id"])
        job = await c.sft.create(training_file=f["id"], model=MODEL, hyperparameters=HYPER, suffix="jc",
                                 metadata={"note": "ignored"})
        out["created"] = job
        out["events_before"] = await c.sft.list_events(job["id"], since_seq=0, limit=200)
        out["cancelled"] = await c.sft.cancel(job["id"])
        out["job_get"] = await c.sft.retrieve(job["id"])
        out["jobs_list"] = await c.sft.list(limit=10)
        out["jobs_cancelled"] = await c.sft.list(status="cancelled", file_id=f["id"], model=MODEL)
        out["jobs_running"] = await c.sft.list(status="running")
        out["file_jobs"] = await c.files.list_jobs(f["id"])
        out["events"] = await c.sft.list_events(job["id"], since_seq=0, limit=200)
        first_seq = out["events"]["data"][0]["seq"]
        out["events_later"] = await c.sft.list_events(job["id"], since_seq=first_seq, limit=200)
        out["checkpoints"] = await c.sft.checkpoints(job["id"])
        out["models"] = await c.models.list()
        out["model_get"] = await c.models.retrieve(MODEL)
        out["model_jobs"] = await c.models.list_jobs(MODEL)
        out["spare_deleted"] = await c.files.delete(spare["id"])
        try:
            await c.sft.retrieve("ftjob-doesnotexist")
        except HTTPError as e:
            out["missing_job"] = err(e)
        try:
            await c.files.delete(f["id"])  # a job refers to it
        except HTTPError as e:
            out["delete_used_file"] = err(e)
        try:
            await c.sft.cancel(job["id"])
        except HTTPError as e:
            out["cancel_again"] = err(e)

async def learning_clients(out, tmp):
    api = URL + "/api"  # as LM users set SYNTH_BASE_URL
    lc = LearningClient(api, KEY)
    file_id = await lc.upload_training_file(DATA)
    job = await lc.create_job(training_type="sft", model=MODEL, training_file_id=file_id, hyperparameters=HYPER,
                              metadata={"run": "learning"})
    out["file_id"], out["created"] = file_id, job
    out["started"] = await lc.start_job(job["id"])
    out["job_get"] = await lc.get_job(job["id"])
    async with AsyncHttpClient(api, KEY) as http:  # LearningClient 0.2.6 has no cancel or model list
        out["cancelled"] = await http.post_json(f"/api/learning/jobs/{job['id']}/cancel", json={})
        out["models"] = await http.get("/api/learning/models")
        try:
            await http.post_json("/api/learning/jobs", json={"model": MODEL, "training_type": "sft"})
        except HTTPError as e:
            out["missing_file"] = err(e)
    try:
        await lc.start_job(job["id"])
    except HTTPError as e:
        out["start_cancelled"] = err(e)
    out["events"] = await lc.get_events(job["id"], since_seq=0)
    out["metrics"] = await lc.get_metrics(job["id"], after_step=-1)
    seen = []
    out["handle"] = await JobHandle(api, KEY, job["id"]).poll_until_terminal(
        interval_seconds=0.5, max_seconds=30, on_event=seen.append)
    out["handle_events"] = seen
    streamed = []
    await asyncio.wait_for(stream_job_events(api, KEY, job["id"], seconds=30, on_event=streamed.append), 60)
    out["streamed"] = streamed
    ft = FtClient(URL, KEY)
    ft_file = await ft.upload_training_file(DATA)
    ft_job = await ft.create_sft_job(model=MODEL, training_file_id=ft_file, hyperparameters=HYPER)
    out["ft_job"] = ft_job
    async with JobsClient(URL, KEY) as c:
        out["ft_cancelled"] = await c.sft.cancel(ft_job["id"])

async def main():
    result = {"jobs": {}, "learning": {}}
    await jobs_client(result["jobs"])
    await learning_clients(result["learning"], None)
    print("RESULT " + json.dumps(result))

asyncio.run(main())
'''


def jsonl(rows) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("synth-jobs")
    proc = ServeProcess(data_dir, env={"HF_HUB_OFFLINE": "1", "TUNEYARD_INFERENCE_THREADS": "1"}).start(timeout=120)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def sdk(serve, tmp_path_factory):
    """Run the script once: every client call's answer, by client."""
    info = synth_env.install()
    print(f"\n[synth-ai venv] {'reused' if info['reused'] else 'installed'}")
    tmp = tmp_path_factory.mktemp("synth-jobs-sdk")
    (tmp / "home").mkdir()
    data = tmp / "sums.jsonl"
    data.write_bytes(jsonl(ROWS))
    script = tmp / "drive.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([str(synth_env.bin_path("python")), str(script), serve.url, serve.key, MODEL, str(data),
                           json.dumps(HYPER)], capture_output=True, text=True, env=synth_env.base_env(tmp / "home"),
                          cwd=tmp, timeout=300, stdin=subprocess.DEVNULL, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def assert_error(err: dict, status: int, *words: str) -> None:
    """Both spellings of the message: ``error.message`` (openai) and ``detail`` (synth-ai)."""
    assert err["status"] == status, err
    assert err["detail"]["detail"] == err["detail"]["error"]["message"], err
    for w in words:
        assert w in err["detail"]["detail"], err


def test_jobs_client_files(sdk, serve):
    out = sdk["jobs"]
    f = out["file"]
    assert f["id"].startswith("file-") and f["object"] == "file" and f["purpose"] == "fine-tune"
    assert f["bytes"] == len(jsonl(ROWS)) and f["filename"] == "sums.jsonl" and f["status"] == "processed"
    assert out["file_get"] == f
    assert f["id"] in [x["id"] for x in out["files_list"]["data"]]
    assert out["spare_deleted"]["deleted"] is True and out["spare_deleted"]["object"] == "file"
    assert_error(out["delete_used_file"], 409, f["dataset_id"], "cannot be deleted")
    # The same dataset on the native surface.
    with serve.client() as c:
        assert c.get(f"/v1/datasets/{f['dataset_id']}").json()["num_rows"] == len(ROWS)


def test_jobs_client_sft_job(sdk, serve):
    out = sdk["jobs"]
    job = out["created"]
    assert job["id"].startswith("ftjob-") and job["object"] == "fine_tuning.job"
    assert job["model"] == MODEL and job["training_file"] == out["file"]["id"] and job["status"] == "queued"
    assert job["hyperparameters"]["max_steps"] == HYPER["max_steps"] and job["user_provided_suffix"] == "jc"
    assert out["cancelled"]["status"] == "cancelled" and out["cancelled"]["id"] == job["id"]
    assert out["job_get"]["status"] == "cancelled" and out["job_get"]["fine_tuned_model"] is None
    assert out["jobs_list"]["object"] == "list" and job["id"] in [j["id"] for j in out["jobs_list"]["data"]]
    assert [j["id"] for j in out["jobs_cancelled"]["data"]] == [job["id"]]
    assert out["jobs_running"]["data"] == []
    assert [j["id"] for j in out["file_jobs"]["data"]] == [job["id"]]
    assert job["id"] in [j["id"] for j in out["model_jobs"]["data"]]
    assert_error(out["missing_job"], 404, "ftjob-doesnotexist")
    assert_error(out["cancel_again"], 400, "cancelled")
    with serve.client() as c:
        assert c.get(f"/v1/training_jobs/{job['training_job_id']}").json()["status"] == "cancelled"


def test_jobs_client_events(sdk):
    out = sdk["jobs"]
    # since_seq: oldest first, in `data` and in `events`, each with its `seq`.
    events = out["events"]["data"]
    assert out["events"]["events"] == events and events
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e["object"] == "fine_tuning.job.event" and e["id"].startswith("ftevent-") for e in events)
    assert any("cancel" in e["message"].lower() for e in events)
    assert [e["seq"] for e in out["events_later"]["data"]] == seqs[1:]
    assert len(out["events_before"]["data"]) < len(events)
    assert out["checkpoints"] == {"object": "list", "data": [], "has_more": False, "first_id": None,
                                  "last_id": None}


def test_jobs_client_models(sdk):
    out = sdk["jobs"]
    assert MODEL in [m["id"] for m in out["models"]["data"]] and MODEL in out["models"]["available_models"]
    assert out["model_get"]["id"] == MODEL and out["model_get"]["object"] == "model"


def test_learning_clients(sdk):
    out = sdk["learning"]
    job = out["created"]
    assert out["file_id"].startswith("file-") and job["training_file"] == out["file_id"]
    assert job["id"].startswith("ftjob-") and job["status"] == "queued" and job["training_type"] == "sft"
    assert out["started"]["id"] == job["id"] and out["started"]["status"] in ("queued", "running")
    assert out["job_get"]["id"] == job["id"]
    assert out["cancelled"]["status"] == "cancelled"
    assert_error(out["start_cancelled"], 409, "cancelled")
    assert_error(out["missing_file"], 400, "training_file")
    assert out["events"] and [e["seq"] for e in out["events"]] == sorted(e["seq"] for e in out["events"])
    assert isinstance(out["metrics"], list)
    # JobHandle polls /api/learning/jobs/{id}, its events (since_seq) and metrics until terminal.
    assert out["handle"] == {"status": "cancelled", "job_id": job["id"]}
    assert {"type": "job.status", "message": "cancelled"} in out["handle_events"]
    assert [e["seq"] for e in out["handle_events"] if "seq" in e] == [e["seq"] for e in out["events"]]
    # stream_job_events: SSE (Accept: text/event-stream) replayed from since_seq=0, closed once terminal.
    assert [e["id"] for e in out["streamed"]] == [e["id"] for e in out["events"]]
    # /api/learning/models lists fine-tunes only (none finished here).
    assert out["models"]["object"] == "list" and out["models"]["data"] == []
    assert out["ft_job"]["training_type"] == "sft" and out["ft_cancelled"]["status"] == "cancelled"


# ---- the aliases over raw HTTP: the same objects as /api/v1, errors in the /api shape ---------------

ALIASES = {"files": ["/api/v1/files", "/api/files", "/api/learning/files"],
           "jobs": ["/api/v1/fine_tuning/jobs", "/api/sft/jobs", "/api/learning/jobs"],
           "models": ["/api/v1/models", "/api/models"]}


@pytest.fixture(scope="module")
def api(serve):
    """The bootstrap key (``tuneyard serve`` has one organization here); tests check their own ids only."""
    with serve.client() as c:
        yield c


def error_of(r: httpx.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["detail"] == body["error"]["message"], body
    for w in words:
        assert w in body["detail"], body
    return body


def test_aliases_answer_the_same_objects(api):
    up = api.post("/api/files", data={"purpose": "fine-tune"},
                  files={"file": ("a.jsonl", io.BytesIO(jsonl(ROWS)), "application/jsonl")})
    assert up.status_code == 200, up.text
    f = up.json()
    for prefix in ALIASES["files"]:
        assert api.get(f"{prefix}/{f['id']}").json() == f
        assert api.get(f"{prefix}/{f['dataset_id']}").json() == f  # either id spelling
    assert api.get(f"/api/learning/files/{f['id']}/content").content == jsonl(ROWS)
    r = api.post("/api/learning/jobs", json={"model": MODEL, "training_file_id": f["id"], "training_type": "sft",
                                            "hyperparameters": HYPER, "metadata": {"a": 1}})
    assert r.status_code == 200, r.text
    job = api.post(f"/api/sft/jobs/{r.json()['id']}/cancel").json()
    assert job["status"] == "cancelled"
    for prefix in ALIASES["jobs"]:
        same = api.get(f"{prefix}/{job['id']}").json()
        assert {k: v for k, v in same.items() if k != "estimated_finish"} == \
               {k: v for k, v in job.items() if k != "estimated_finish"}
        events = api.get(f"{prefix}/{job['id']}/events", params={"limit": 100}).json()
        assert events["object"] == "list" and "events" not in events
    v1 = api.get(f"/api/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 100}).json()["data"]
    asc = api.get(f"/api/sft/jobs/{job['id']}/events", params={"since_seq": 0}).json()
    assert asc["data"] == asc["events"] == list(reversed(v1))
    listing = api.get("/api/v1/models").json()
    assert api.get("/api/models").json() == listing
    learning = api.get("/api/learning/models").json()
    assert learning["data"] == listing["fine_tuned_models"]
    assert api.get(f"/api/models/{MODEL}").json() == api.get(f"/api/v1/models/{MODEL}").json()
    assert api.get(f"/api/learning/models/{MODEL}").json()["id"] == MODEL
    # A native /v1 id reads the same job everywhere.
    assert api.get(f"/api/learning/jobs/{job['training_job_id']}").json()["id"] == job["id"]
    metrics = api.get(f"/api/learning/jobs/{job['id']}/metrics").json()
    assert metrics["points"] == [] and metrics["job_id"] == job["id"]


def test_alias_errors(api, serve):
    for prefix in ALIASES["files"]:
        error_of(api.get(f"{prefix}/file-nope"), 404, "file-nope")
    for prefix in ALIASES["jobs"]:
        error_of(api.get(f"{prefix}/ftjob-nope"), 404, "ftjob-nope")
        error_of(api.post(prefix, content=b"[1]", headers={"Content-Type": "application/json"}), 400, "JSON object")
        error_of(api.post(prefix, json={"model": MODEL}), 400, "training_file")
        error_of(api.post(prefix, json={"model": MODEL, "training_file": "file-nope"}), 404, "file-nope")
        error_of(api.get(prefix, params={"status": "sleeping"}), 400, "sleeping")
        error_of(api.get(f"{prefix}/ftjob-nope/events", params={"since_seq": 0}), 404, "ftjob-nope")
    error_of(api.get("/api/sft/jobs/ftjob-x/events", params={"since_seq": -1}), 400, "since_seq")
    error_of(api.post("/api/learning/jobs/ftjob-nope/start"), 404, "ftjob-nope")
    error_of(api.get("/api/files/file-nope/jobs"), 404, "file-nope")
    error_of(api.get("/api/models/nobody/nothing/jobs"), 404, "nobody/nothing")
    error_of(api.get("/api/learning/models/nobody/nothing"), 404, "nobody/nothing")
    error_of(api.post("/api/files", data={"purpose": "assistants"},
                      files={"file": ("a.jsonl", io.BytesIO(jsonl(ROWS)), "application/jsonl")}), 400, "fine-tune")
    error_of(api.post("/api/learning/files", files={"file": ("a.jsonl", io.BytesIO(b"nope\n"), "application/jsonl")},
                      data={"purpose": "fine-tune"}), 400, "line 1")
    with httpx.Client(base_url=serve.url, headers={"Authorization": "Bearer vk_not_a_key"}) as bad:
        for path in ("/api/files", "/api/sft/jobs", "/api/models", "/api/learning/jobs/ftjob-x", "/api/learning/models"):
            error_of(bad.get(path), 401)


def test_learning_metrics_from_metrics_events(api, serve):
    """``/api/learning/jobs/{id}/metrics`` reads the job's ``metrics`` events. No training runs here, so the
    events are written the way the scheduler's relay writes them (job_states.add_event), into the server's DB."""
    from tuneyard.context import Context
    from tuneyard.services.job_states import add_event
    from tuneyard.settings import Settings

    up = api.post("/api/files", data={"purpose": "fine-tune"},
                  files={"file": ("m.jsonl", io.BytesIO(jsonl(ROWS)), "application/jsonl")}).json()
    job = api.post("/api/learning/jobs", json={"model": MODEL, "training_file_id": up["id"], "training_type": "sft",
                                               "hyperparameters": HYPER}).json()
    api.post(f"/api/learning/jobs/{job['id']}/cancel").raise_for_status()
    ctx = Context.from_settings(Settings(data_dir=serve.data_dir))
    try:
        with ctx.db.session() as s:
            for step, loss in ((1, 2.5), (2, 2.0)):
                add_event(s, job["training_job_id"], "metrics", f"step={step} loss={loss}",
                          data={"step": step, "total_steps": 50, "loss": loss, "learning_rate": 5e-4})
    finally:
        ctx.db.dispose()
    points = api.get(f"/api/learning/jobs/{job['id']}/metrics").json()["points"]
    assert [(p["name"], p["step"], p["value"]) for p in points] == [
        ("train_loss", 1, 2.5), ("learning_rate", 1, 5e-4), ("train_loss", 2, 2.0), ("learning_rate", 2, 5e-4)]
    later = api.get(f"/api/learning/jobs/{job['id']}/metrics", params={"name": "train_loss", "after_step": 1}).json()
    assert [(p["step"], p["value"]) for p in later["points"]] == [(2, 2.0)]
    error_of(api.get(f"/api/learning/jobs/{job['id']}/metrics", params={"limit": 0}), 400, "limit")
    # The same events on the events list, with their seq (what JobHandle pages by).
    events = api.get(f"/api/learning/jobs/{job['id']}/events", params={"since_seq": 0}).json()["events"]
    assert [e["data"]["train_loss"] for e in events if e["type"] == "metrics"] == [2.5, 2.0]
