"""``/v1/datasets``: JSONL upload with format detection, every bad input (nothing stored after it),
get/list/delete, cursor pagination, cross-organization isolation, and the in-use 409.
Runs on SQLite and on Postgres through the ``server`` fixture."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from tuneyard.ids import new_id
from tuneyard.store.models import TrainingJob

CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                     {"role": "assistant", "content": "Hello!"}]}
COMPLETION = {"prompt": "2 + 2 =", "completion": " 4"}
PREFERENCE = {"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}
PROMPT = {"prompt": "What is 3 * 3?", "answer": "9"}


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def upload(api, body: bytes, name: str | None = "ds", filename: str = "data.jsonl"):
    data = {"name": name} if name is not None else {}
    return api.post("/v1/datasets", files={"file": (filename, body, "application/jsonl")}, data=data)


def org_id(api) -> str:
    return api.get("/v1/me").json()["org_id"]


def assert_nothing_stored(api, server) -> None:
    assert api.get("/v1/datasets").json()["data"] == []
    blobs = server.ctx.settings.data_dir / "blobs"
    org_dir = blobs / "orgs" / org_id(api)
    assert not org_dir.exists() or not [p for p in org_dir.rglob("*") if p.is_file()]
    tmp = blobs / ".tmp"
    assert not tmp.exists() or not list(tmp.iterdir()), "scratch files were left behind"


@pytest.mark.parametrize("row, fmt, columns", [
    (CHAT, "chat", ["messages"]),
    (COMPLETION, "completion", ["prompt", "completion"]),
    (PREFERENCE, "preference", ["prompt", "chosen", "rejected"]),
    ({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hey"}],
      "rejected": [{"role": "assistant", "content": "Go away"}]}, "preference", ["prompt", "chosen", "rejected"]),
    (PROMPT, "prompt", ["prompt", "answer"]),
])
def test_upload_detects_format(api, server, row, fmt, columns):
    rows = [{**row, "id": i} for i in range(4)]
    body = jsonl(rows) + b"\n"   # a trailing blank line is fine
    r = upload(api, body, name="my-data")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["id"].startswith("ds_") and ds["object"] == "dataset"
    assert (ds["name"], ds["format"], ds["num_rows"], ds["bytes"]) == ("my-data", fmt, 4, len(body))
    assert ds["sha256"] == hashlib.sha256(body).hexdigest()
    assert ds["columns"] == [*columns, "id"]
    assert ds["source_type"] == "upload" and ds["filename"] == "data.jsonl"
    assert ds["created_at"].endswith("Z")
    stored = server.ctx.blobs.iter_bytes(f"orgs/{org_id(api)}/datasets/{ds['id']}.jsonl")
    assert b"".join(stored) == body  # kept byte for byte


def test_name_defaults_to_file_stem(api):
    r = upload(api, jsonl([PROMPT]), name=None, filename="gsm8k-train.jsonl")
    assert r.status_code == 201 and r.json()["name"] == "gsm8k-train"


BAD_INPUTS = {
    "bad json line": (jsonl([PROMPT, PROMPT]) + b'{"prompt": "x",\n', ["line 3", "json"]),
    "non-object line": (jsonl([PROMPT]) + b'["prompt", "x"]\n', ["line 2", "object"]),
    "missing columns": (jsonl([PROMPT, {"question": "x", "answer": "y"}]), ["line 2", "prompt"]),
    "mixed formats": (jsonl([PROMPT, COMPLETION]), ["line 2", "completion", "prompt"]),
    "duplicate ids": (jsonl([{**PROMPT, "id": "a"}, {**PROMPT, "id": "b"}, {**PROMPT, "id": "a"}]),
                      ["line 3", "duplicate id"]),
    "empty file": (b"", ["no rows"]),
    "blank lines only": (b"\n  \n\n", ["no rows"]),
    "one-message chat": (jsonl([CHAT, {"messages": [{"role": "user", "content": "Hi"},
                                                    {"role": "assistant", "content": " "}]}]),
                         ["line 2", "at least 2"]),
    "bad role": (jsonl([{"messages": [{"role": "robot", "content": "a"}, {"role": "user", "content": "b"}]}]),
                 ["line 1", "role"]),
    "empty prompt": (jsonl([{"prompt": "   ", "answer": "1"}]), ["line 1", "empty"]),
    "chosen without rejected": (jsonl([{"prompt": "p", "chosen": "c"}]), ["line 1", "rejected"]),
    "not utf-8": (jsonl([PROMPT]) + b'{"prompt": "\xff\xfe"}\n', ["line 2"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_upload_is_400_naming_the_line_and_stores_nothing(api, server, case):
    body, words = BAD_INPUTS[case]
    r = upload(api, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == "file"
    for w in words:
        assert w.lower() in err["message"].lower(), err["message"]
    assert_nothing_stored(api, server)


def big_body(size: int) -> bytes:
    line = json.dumps({"prompt": "x" * 1000}).encode() + b"\n"
    return line * (size // len(line) + 1)


def test_too_large_upload_is_413_and_stores_nothing(api, server):
    r = upload(api, big_body(3 * 1024 * 1024))
    assert r.status_code == 413, r.text
    assert r.json()["error"]["param"] == "file"
    assert_nothing_stored(api, server)


def test_too_large_upload_without_content_length_is_413(api, server):
    """A chunked body declares no size: the limit is enforced while the file is copied."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jsonl\"\r\n"
            "Content-Type: application/jsonl\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    payload = big_body(3 * 1024 * 1024)

    def chunks():
        yield head
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i:i + 256 * 1024]
        yield tail

    r = api.post("/v1/datasets", content=chunks(),
                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413, r.text
    assert_nothing_stored(api, server)


def test_upload_without_file_is_422_naming_it(api):
    r = api.post("/v1/datasets", data={"name": "x"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "file"


def test_get_list_delete(api, server):
    a = upload(api, jsonl([PROMPT] * 7), name="a").json()
    b = upload(api, jsonl([COMPLETION]), name="b").json()
    got = api.get(f"/v1/datasets/{a['id']}").json()
    assert got["id"] == a["id"] and got["num_rows"] == 7 and got["sha256"] == a["sha256"]
    assert got["preview"] == [PROMPT] * 5
    assert "preview" not in api.get(f"/v1/datasets/{a['id']}", params={"include_preview": "false"}).json()
    listed = api.get("/v1/datasets").json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [d["id"] for d in listed["data"]] == [b["id"], a["id"]]   # newest first
    r = api.delete(f"/v1/datasets/{a['id']}")
    assert r.status_code == 200 and r.json() == {"id": a["id"], "object": "dataset", "deleted": True}
    assert not server.ctx.blobs.exists(f"orgs/{org_id(api)}/datasets/{a['id']}.jsonl")
    r = api.get(f"/v1/datasets/{a['id']}")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert api.delete(f"/v1/datasets/{a['id']}").status_code == 404
    assert [d["id"] for d in api.get("/v1/datasets").json()["data"]] == [b["id"]]
    assert api.get("/v1/datasets/ds_doesnotexist").status_code == 404


def test_pagination_is_stable_under_inserts(api):
    created = [upload(api, jsonl([PROMPT]), name=f"d{i}").json()["id"] for i in range(25)]
    newest_first = created[::-1]
    first = api.get("/v1/datasets", params={"limit": 10}).json()
    assert len(first["data"]) == 10 and first["has_more"] is True
    # rows inserted while the client pages must not shift or repeat the pages that follow
    late = [upload(api, jsonl([PROMPT]), name=f"late{i}").json()["id"] for i in range(3)]
    second = api.get("/v1/datasets", params={"limit": 10, "after": first["data"][-1]["id"]}).json()
    assert len(second["data"]) == 10 and second["has_more"] is True
    third = api.get("/v1/datasets", params={"limit": 10, "after": second["data"][-1]["id"]}).json()
    assert len(third["data"]) == 5 and third["has_more"] is False
    ids = [d["id"] for page in (first, second, third) for d in page["data"]]
    assert ids == newest_first and len(set(ids)) == 25
    assert not set(late) & set(ids)
    exact = api.get("/v1/datasets", params={"limit": 5, "after": second["data"][-1]["id"]}).json()
    assert len(exact["data"]) == 5 and exact["has_more"] is False
    everything = api.get("/v1/datasets", params={"limit": 100}).json()
    assert [d["id"] for d in everything["data"]] == late[::-1] + newest_first


@pytest.mark.parametrize("limit", ["0", "101", "-1"])
def test_limit_out_of_range_is_400(api, limit):
    r = api.get("/v1/datasets", params={"limit": limit})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "limit"


def test_limit_not_a_number_and_unknown_cursor(api):
    r = api.get("/v1/datasets", params={"limit": "ten"})
    assert r.status_code in (400, 422) and r.json()["error"]["param"] == "limit"
    r = api.get("/v1/datasets", params={"after": "ds_nope"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"


def test_other_organizations_dataset_is_404(api, server):
    mine = upload(api, jsonl([PROMPT]), name="private").json()
    _, other_key = server.new_org()
    with server.client(other_key) as other:
        for r in (other.get(f"/v1/datasets/{mine['id']}"), other.delete(f"/v1/datasets/{mine['id']}")):
            assert r.status_code == 404, r.text
            assert "private" not in r.text and r.json()["error"]["type"] == "not_found_error"
        assert other.get("/v1/datasets").json()["data"] == []
        assert other.get("/v1/datasets", params={"after": mine["id"]}).status_code == 400
    assert api.get(f"/v1/datasets/{mine['id']}").status_code == 200


def test_delete_dataset_used_by_a_job_is_409(api, server):
    ds = upload(api, jsonl([PROMPT]), name="in-use").json()
    job_id = new_id("training_job")
    with server.ctx.db.session() as s:
        s.add(TrainingJob(id=job_id, org_id=org_id(api), status="completed", method="grpo",
                          base_model="HuggingFaceTB/SmolLM2-135M-Instruct", dataset_id=ds["id"], output_name="m",
                          gpu_type="cpu", gpu_count=1, provider="local"))
    r = api.delete(f"/v1/datasets/{ds['id']}")
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["type"] == "conflict_error" and job_id in err["message"]
    assert api.get(f"/v1/datasets/{ds['id']}").status_code == 200
    assert server.ctx.blobs.exists(f"orgs/{org_id(api)}/datasets/{ds['id']}.jsonl")
    with server.ctx.db.session() as s:
        s.query(TrainingJob).filter_by(id=job_id).delete()
    assert api.delete(f"/v1/datasets/{ds['id']}").status_code == 200
