"""tuneyard.client against a real server (SQLite and Postgres): error mapping, pagination, retries, streams."""

from __future__ import annotations

import io
import json
import stat
import uuid

import httpx
import pytest
import sqlalchemy as sa

from tuneyard.client import (
    BadRequest,
    Client,
    ConnectionFailed,
    InsufficientCredit,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    ValidationError,
)
from tuneyard.client import config as client_config
from tuneyard.services import orgs

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROWS = b"\n".join(json.dumps({"prompt": f"Say {i}.", "completion": f"{i}"}).encode() for i in range(4))
REWARD = b"def reward(prompts, completions, **kwargs):\n    return [1.0 for _ in completions]\n"


@pytest.fixture
def client(server):
    """A client for a fresh organization, so tests never see each other's rows."""
    _, key = server.new_org()
    with Client(server.url, key, backoff=0.05) as c:
        yield c


def upload(c: Client, name: str = "rows"):
    return c.datasets.upload(io.BytesIO(ROWS), name=name, filename=f"{name}.jsonl")


def test_typed_objects_keep_every_field_the_server_sends(client, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(ROWS)
    ds = client.datasets.upload(path)
    assert ds.id.startswith("ds_") and ds.name == "train" and ds.num_rows == 4 and ds.format == "completion"
    assert ds.to_dict()["sha256"]  # not a declared field, still there
    got = client.datasets.get(ds.id)
    assert got.preview and got.preview[0]["prompt"] == "Say 0."
    rf = client.reward_functions.upload(io.BytesIO(REWARD), name="ones", filename="ones.py")
    assert rf.id.startswith("rf_") and rf.format == "trl"
    assert "def reward" in client.reward_functions.get(rf.id).source
    assert [r.id for r in client.reward_functions.list()] == [rf.id]


def test_error_envelope_maps_to_exceptions(server, client):
    with pytest.raises(NotFound) as nf:
        client.datasets.get("ds_doesnotexist")
    assert nf.value.status_code == 404 and nf.value.code == "not_found" and "ds_doesnotexist" in str(nf.value)
    assert nf.value.request_id  # the server's X-Request-Id, for support

    ds = upload(client)
    with pytest.raises(BadRequest) as bad:
        client.training_jobs.create(MODEL, ds.id, method="sft", hyperparameters={"warp_speed": 9})
    assert bad.value.status_code == 400 and bad.value.param == "hyperparameters.warp_speed"
    assert bad.value.code == "unknown_hyperparameter"

    with pytest.raises(ValidationError) as invalid:  # 422 is a BadRequest too
        client.training_jobs.create("", ds.id)
    assert invalid.value.status_code == 422 and invalid.value.param == "base_model"
    assert isinstance(invalid.value, BadRequest)

    with pytest.raises(Unauthorized) as unauth, Client(server.url, "vk_not_a_real_key") as stranger:
        stranger.datasets.list()
    assert unauth.value.status_code == 401

    # Another organization's id is simply not found.
    _, other_key = server.new_org()
    with Client(server.url, other_key) as other, pytest.raises(NotFound):
        other.datasets.get(ds.id)


def test_insufficient_credit_is_402(server):
    with server.ctx.db.session() as s:
        org = orgs.create_org(s, f"broke-{uuid.uuid4().hex[:8]}", initial_credit_usd=0)
        _, key = orgs.create_key(s, org.id, "test")
    with Client(server.url, key) as broke:
        ds = upload(broke)
        with pytest.raises(InsufficientCredit) as exc:
            broke.training_jobs.create(MODEL, ds.id, method="sft", hyperparameters={"max_steps": 1})
    assert exc.value.status_code == 402 and exc.value.code == "insufficient_credit"


def test_pagination_walks_every_page_newest_first(client):
    ids = [upload(client, f"d{i}").id for i in range(5)]
    first = client.datasets.list(limit=2)
    assert [d.id for d in first] == ids[::-1][:2] and first.has_more
    assert first.next_cursor == ids[3]
    second = first.next_page()
    assert [d.id for d in second] == [ids[2], ids[1]] and second.has_more
    last = second.next_page()
    assert [d.id for d in last] == [ids[0]] and not last.has_more and last.next_page() is None
    assert [d.id for d in client.datasets.list(limit=2).auto_paging_iter()] == ids[::-1]
    assert client.datasets.list(limit=2, after=ids[3]).data[0].id == ids[2]
    with pytest.raises(BadRequest) as exc:
        client.datasets.list(after="ds_unknown_cursor")
    assert exc.value.param == "after"


def test_idempotent_requests_are_retried_through_a_5xx(server, client):
    """A real 500 (the table is away), fixed after the first failure: the GET succeeds on its retry."""
    rf = client.reward_functions.upload(io.BytesIO(REWARD), name="r", filename="r.py")
    seen: list[int] = []
    engine = server.ctx.db.engine

    def move(src: str, dst: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {src} RENAME TO {dst}"))

    def on_response(response: httpx.Response) -> None:
        if response.request.url.path == "/v1/reward_functions":
            seen.append(response.status_code)
            if response.status_code == 500 and seen.count(500) == 1:
                move("reward_functions_away", "reward_functions")  # the outage ends

    move("reward_functions", "reward_functions_away")
    try:
        with Client(server.url, client.api_key, backoff=0.01, event_hooks={"response": [on_response]}) as c:
            listed = c.reward_functions.list()
    finally:
        with engine.connect() as conn:
            away = sa.inspect(conn).has_table("reward_functions_away")
        if away:
            move("reward_functions_away", "reward_functions")
    assert seen == [500, 200]
    assert [r.id for r in listed] == [rf.id]


def test_a_5xx_that_persists_raises_server_error(server, client):
    engine = server.ctx.db.engine
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE reward_functions RENAME TO reward_functions_away"))
    try:
        with Client(server.url, client.api_key, max_retries=1, backoff=0.01) as c, \
                pytest.raises(ServerError) as exc:
            c.reward_functions.list()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE reward_functions_away RENAME TO reward_functions"))
    assert exc.value.status_code == 500 and exc.value.message == "Internal server error"


def test_non_idempotent_posts_are_not_retried(server, client):
    """The 5th concurrent job is refused with 429; the POST is sent once and the error surfaces."""
    ds = upload(client)
    posts: list[int] = []

    def count(response: httpx.Response) -> None:
        if response.request.method == "POST" and response.request.url.path == "/v1/training_jobs":
            posts.append(response.status_code)

    with Client(server.url, client.api_key, backoff=0.01, event_hooks={"response": [count]}) as c:
        limit = server.ctx.settings.max_concurrent_jobs_per_org
        jobs = [c.training_jobs.create(MODEL, ds.id, method="sft", hyperparameters={"max_steps": 1})
                for _ in range(limit)]
        with pytest.raises(RateLimited) as exc:
            c.training_jobs.create(MODEL, ds.id, method="sft", hyperparameters={"max_steps": 1})
        for job in jobs:
            c.training_jobs.cancel(job.id)
    assert exc.value.status_code == 429
    assert posts == [201] * limit + [429]


def test_unreachable_server_is_a_connection_error():
    with Client("http://127.0.0.1:9", "vk_x", max_retries=1, backoff=0.01) as c, \
            pytest.raises(ConnectionFailed) as exc:
        c.billing.balance()
    assert "cannot reach tuneyard" in str(exc.value)


def test_job_lifecycle_streams_and_wait(client):
    """No scheduler on this server: a queued job is cancelled, and every view of it agrees."""
    ds = upload(client)
    job = client.training_jobs.create(MODEL, ds.id, method="sft", output_name="never-trained",
                                      hyperparameters={"max_steps": 1})
    assert job.status == "queued" and job.id.startswith("job_")
    assert [j.id for j in client.training_jobs.list(status="queued")] == [job.id]
    cancelled = client.training_jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.done

    seen = []
    final = client.training_jobs.wait(job.id, timeout=60, poll_interval=0.2, on_progress=seen.append)
    assert final.status == "cancelled"
    assert seen[0].event.type == "job.queued" and seen[-1].status == "cancelled"

    streamed = [e.type for e in client.training_jobs.stream_events(job.id)]
    assert streamed == [e.type for e in client.training_jobs.events(job.id)]
    assert streamed[0] == "job.queued" and "job.cancelled" in streamed
    lines = list(client.training_jobs.stream_logs(job.id))
    assert lines[-1] == "[Job cancelled]"
    with pytest.raises(BadRequest) as exc:
        client.training_jobs.model(job.id)
    assert exc.value.code == "model_not_ready"


def test_api_keys_billing_and_models(server, client):
    created = client.api_keys.create("second")
    assert created.key.startswith("vk_") and created.key_prefix and created.key.startswith(created.key_prefix)
    with Client(server.url, created.key) as second:
        assert second.me().org_id == client.me().org_id
        assert {k.id for k in client.api_keys.list()} >= {created.id}
        revoked = client.api_keys.revoke(created.id)
        assert revoked.revoked
        with pytest.raises(Unauthorized):
            second.me()
    balance = client.billing.balance()
    assert balance.balance_usd == pytest.approx(server.ctx.settings.initial_credit_usd)
    assert [t.type for t in client.billing.transactions()] == ["grant"]
    assert MODEL in [m.id for m in client.models.list()]


def test_config_resolution_and_file_mode(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "config.json"
    monkeypatch.setenv("TUNEYARD_CONFIG", str(path))
    monkeypatch.delenv("TUNEYARD_URL", raising=False)
    monkeypatch.delenv("TUNEYARD_API_KEY", raising=False)
    assert client_config.resolve().url == client_config.DEFAULT_URL and not client_config.has_login()
    client_config.write_file("http://10.0.0.5:8000", "vk_from_file")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = client_config.resolve()
    assert (cfg.url, cfg.api_key, cfg.url_source) == ("http://10.0.0.5:8000", "vk_from_file", "file")
    monkeypatch.setenv("TUNEYARD_URL", "127.0.0.1:9000/v1/")
    monkeypatch.setenv("TUNEYARD_API_KEY", "vk_from_env")
    cfg = client_config.resolve()
    assert (cfg.url, cfg.api_key, cfg.key_source) == ("http://127.0.0.1:9000", "vk_from_env", "env")
    assert Client(api_key="vk_explicit").api_key == "vk_explicit"
