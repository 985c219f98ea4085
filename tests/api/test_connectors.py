"""``/v1/datasets/connect`` and ``/connect/validate`` against real local sources: a Hugging Face dataset
folder, moto's S3 server, the local Postgres, and a loopback HTTP server. Secrets are never stored."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tuneyard.store.models import Dataset

GOOD_ROWS = [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(7)]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def stored_rows(server, ds_id: str) -> list[dict]:
    with server.ctx.db.session() as s:
        ds = s.query(Dataset).filter_by(id=ds_id).one()
        with server.ctx.blobs.open(ds.blob_key) as f:
            return [json.loads(line) for line in f if line.strip()]


def db_row_text(server, ds_id: str) -> str:
    """Everything the datasets table holds about one dataset, as text (to look for leaked secrets)."""
    with server.ctx.db.session() as s:
        ds = s.query(Dataset).filter_by(id=ds_id).one()
        return json.dumps({c.name: getattr(ds, c.key) for c in Dataset.__table__.columns}, default=str)


def assert_source_error(r: httpx.Response, *words: str, param: str | None = None) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "source_unreachable", err
    for w in words:
        assert w.lower() in err["message"].lower(), err
    if param:
        assert err["param"] == param


def assert_nothing_stored(api) -> None:
    assert api.get("/v1/datasets").json()["data"] == []


# --- Hugging Face ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    datasets = pytest.importorskip("datasets")
    root = tmp_path_factory.mktemp("hf")
    # load_dataset on a folder of files writes Arrow files to the HF cache: keep them in the test's tmp dir
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "cache"))
        yield from _write_hf_folders(datasets, root)


def _write_hf_folders(datasets, root):
    qa = [{"question": f"q{i}?", "answer": str(i), "id": i} for i in range(12)]
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(qa[:9]),
        "test": datasets.Dataset.from_list(qa[9:]),
    }).save_to_disk(str(root / "dict"))
    datasets.Dataset.from_list([{"messages": [{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": "hello"}]}] * 3
                               ).save_to_disk(str(root / "single"))
    (root / "files").mkdir()
    (root / "files" / "train.jsonl").write_bytes(jsonl(GOOD_ROWS))
    yield root


def test_hf_folder_with_split_and_column_mapping(api, hf_folders):
    body = {"name": "qa-test", "source_type": "hf", "huggingface_dataset": str(hf_folders / "dict"),
            "huggingface_config": {"split": "test", "column_mapping": {"question": "prompt"}}}
    r = api.post("/v1/datasets/connect", json=body)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["id"].startswith("ds_") and ds["object"] == "dataset"
    assert (ds["name"], ds["source_type"], ds["format"], ds["num_rows"]) == ("qa-test", "hf", "prompt", 3)
    assert ds["huggingface_dataset"] == str(hf_folders / "dict")
    assert set(ds["columns"]) == {"prompt", "answer", "id"}
    assert len(ds["sha256"]) == 64
    got = api.get(f"/v1/datasets/{ds['id']}").json()
    assert got["preview"][0] == {"prompt": "q9?", "answer": "9", "id": 9}

    # the default split is train
    r = api.post("/v1/datasets/connect", json={**body, "name": "qa-train",
                                              "huggingface_config": {"column_mapping": {"question": "prompt"}}})
    assert r.status_code == 201 and r.json()["num_rows"] == 9


def test_hf_single_dataset_and_data_files_folder_with_readme_aliases(api, hf_folders):
    r = api.post("/v1/datasets/connect/validate",
                 json={"source_type": "hf", "hf_dataset": str(hf_folders / "single"), "hf_config": {"split": "train"}})
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["object"] == "dataset_validation"
    assert (v["valid"], v["num_rows"], v["format"], v["reason"]) == (True, 3, "chat", None)
    assert v["columns"] == ["messages"] and len(v["preview"]) == 3

    r = api.post("/v1/datasets/connect", json={"name": "from-files", "hf_dataset": str(hf_folders / "files")})
    assert r.status_code == 201, r.text
    assert (r.json()["format"], r.json()["num_rows"]) == ("prompt", len(GOOD_ROWS))


def test_hf_errors_are_clear_400s(api, hf_folders):
    folder = str(hf_folders / "dict")
    r = api.post("/v1/datasets/connect", json={"name": "x", "huggingface_dataset": str(hf_folders / "nope")})
    assert_source_error(r, "no dataset folder")
    r = api.post("/v1/datasets/connect", json={"name": "x", "huggingface_dataset": folder,
                                               "huggingface_config": {"split": "validation"}})
    assert_source_error(r, "no split 'validation'", "train", "test")
    r = api.post("/v1/datasets/connect", json={"name": "x", "huggingface_dataset": folder,
                                               "huggingface_config": {"column_mapping": {"quest": "prompt"}}})
    assert_source_error(r, "quest", param="huggingface_config.column_mapping")
    # a folder whose rows have no known format is an invalid dataset, not a source error
    r = api.post("/v1/datasets/connect", json={"name": "x", "huggingface_dataset": folder})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_dataset"
    # a Hub id that is not cached, with the Hub offline (the test session sets HF_DATASETS_OFFLINE)
    r = api.post("/v1/datasets/connect", json={"name": "x", "huggingface_dataset": "nobody/no-such-dataset"})
    assert_source_error(r, "not in the local hugging face cache")
    v = api.post("/v1/datasets/connect/validate", json={"huggingface_dataset": "nobody/no-such-dataset"}).json()
    assert v["valid"] is False and "cache" in v["reason"] and v["num_rows"] is None
    assert_nothing_stored(api)


def test_hf_request_errors(api, server):
    r = api.post("/v1/datasets/connect", json={"name": "x", "source_type": "hf"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "huggingface_dataset"
    r = api.post("/v1/datasets/connect/validate", json={"source_type": "hf"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "huggingface_dataset"
    r = api.post("/v1/datasets/connect", json={"name": "x", "huggingface_dataset": "not a repo id!"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "huggingface_dataset"
    # tuneyard's own data directory is off limits
    r = api.post("/v1/datasets/connect", json={"name": "x", "huggingface_dataset": str(server.ctx.settings.data_dir)})
    assert r.status_code == 400 and "data directory" in r.json()["error"]["message"]


def test_unknown_source_type_and_volumes(api):
    r = api.post("/v1/datasets/connect", json={"name": "x", "source_type": "ftp", "source_uri": "ftp://x/y"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "source_type"
    r = api.post("/v1/datasets/connect/validate", json={"source_type": "ftp"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "source_type"
    r = api.post("/v1/datasets/connect", json={"name": "x", "volume": "vol_1", "volume_path": "/data.jsonl"})
    assert r.status_code == 400 and "volumes are not supported" in r.json()["error"]["message"]
    r = api.post("/v1/datasets/connect", json={"name": 5})
    assert r.status_code == 422 and r.json()["error"]["param"] == "name"
    assert_nothing_stored(api)


def test_connect_is_idempotent_by_name_and_source(api, hf_folders):
    body = {"name": "gsm8k-ab12cd34", "huggingface_dataset": str(hf_folders / "dict"),
            "huggingface_config": {"split": "train", "column_mapping": {"question": "prompt"}}}
    first = api.post("/v1/datasets/connect", json=body)
    assert first.status_code == 201
    again = api.post("/v1/datasets/connect", json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    # same name, another source config: a new snapshot
    other = api.post("/v1/datasets/connect", json={**body, "huggingface_config": {
        "split": "test", "column_mapping": {"question": "prompt"}}})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert len(api.get("/v1/datasets").json()["data"]) == 2


# --- S3 (moto server mode) -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3():
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin", "region_name": "us-east-1",
             "endpoint_url": endpoint}
    client = boto3.client("s3", **admin)
    client.create_bucket(Bucket="corpus")
    client.put_object(Bucket="corpus", Key="gsm/train.jsonl", Body=jsonl(GOOD_ROWS))
    client.put_object(Bucket="corpus", Key="gsm/rows.json", Body=json.dumps(GOOD_ROWS[:4]).encode())
    client.put_object(Bucket="corpus", Key="gsm/bad.jsonl", Body=jsonl(GOOD_ROWS[:2]) + b"{oops\n")
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(GOOD_ROWS[:5]), buf)
    client.put_object(Bucket="corpus", Key="gsm/rows.parquet", Body=buf.getvalue())
    # A reader identity, then switch moto's authentication on so wrong keys are refused.
    iam = boto3.client("iam", **admin)
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
    creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"],
             "region": "us-east-1", "endpoint_url": endpoint}
    yield creds
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf")
    moto.stop()


def test_s3_jsonl_json_and_parquet(api, server, s3):
    r = api.post("/v1/datasets/connect", json={"name": "s3-gsm", "source_type": "s3",
                                               "source_uri": "s3://corpus/gsm/train.jsonl", "credentials": s3})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["source_type"], ds["source_uri"], ds["format"], ds["num_rows"]) == (
        "s3", "s3://corpus/gsm/train.jsonl", "prompt", len(GOOD_ROWS))
    assert stored_rows(server, ds["id"]) == GOOD_ROWS
    # the credentials were used, and are nowhere: not in the response, not in the database row
    secret, key_id = s3["aws_secret_access_key"], s3["aws_access_key_id"]
    assert secret not in r.text and key_id not in r.text
    assert secret not in api.get(f"/v1/datasets/{ds['id']}").text
    row = db_row_text(server, ds["id"])
    assert secret not in row and key_id not in row
    aliased = {"access_key_id": key_id, "secret_access_key": secret, "endpoint": s3["endpoint_url"]}
    for key, n in (("gsm/rows.json", 4), ("gsm/rows.parquet", 5)):
        r = api.post("/v1/datasets/connect", json={"name": key, "source_type": "s3",
                                                   "source_uri": f"s3://corpus/{key}", "credentials": aliased})
        assert r.status_code == 201, r.text
        assert r.json()["num_rows"] == n and r.json()["format"] == "prompt"
    v = api.post("/v1/datasets/connect/validate", json={"source_type": "s3", "source_uri": "s3://corpus/gsm/train.jsonl",
                                                        "credentials": s3}).json()
    assert (v["valid"], v["num_rows"], v["format"]) == (True, len(GOOD_ROWS), "prompt")
    assert v["preview"] == GOOD_ROWS[:5]


def test_s3_errors(api, s3):
    def connect(uri, creds=s3):
        return api.post("/v1/datasets/connect", json={"name": "s3-bad", "source_type": "s3", "source_uri": uri,
                                                      "credentials": creds})

    assert_source_error(connect("s3://corpus/gsm/missing.jsonl"), "does not exist", "missing.jsonl",
                        param="source_uri")
    assert_source_error(connect("s3://no-such-bucket/a.jsonl"), "no-such-bucket")
    assert_source_error(connect("s3://corpus/gsm/train.jsonl", {**s3, "aws_secret_access_key": "wrong"}),
                        "secret access key was refused")
    assert_source_error(connect("s3://corpus/gsm/train.jsonl", {**s3, "aws_access_key_id": "AKIANOTAKEY"}),
                        "access key id was refused")
    assert_source_error(connect("s3://corpus/gsm/train.jsonl", None), "s3://corpus/gsm/train.jsonl")  # anonymous
    bad = connect("s3://corpus/gsm/bad.jsonl")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_dataset"
    assert "line 3" in bad.json()["error"]["message"]
    r = api.post("/v1/datasets/connect", json={"name": "x", "source_type": "s3", "source_uri": "https://corpus/x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "source_uri"
    for creds in ({**s3, "password": "x"}, {**s3, "endpoint_url": "not-a-url"}, {**s3, "aws_session_token": 5},
                  {"aws_access_key_id": "only-the-id"}):
        r = connect("s3://corpus/gsm/train.jsonl", creds)
        assert r.status_code == 400 and r.json()["error"]["param"] == "credentials", r.text
    assert_nothing_stored(api)
    for uri, creds in (("s3://corpus/gsm/missing.jsonl", s3),
                       ("s3://corpus/gsm/train.jsonl", {**s3, "aws_secret_access_key": "wrong"})):
        r = api.post("/v1/datasets/connect/validate",
                     json={"source_type": "s3", "source_uri": uri, "credentials": creds})
        assert r.status_code == 200, r.text
        v = r.json()
        assert v["valid"] is False and v["num_rows"] is None and v["reason"] and v["preview"] == []


# --- Postgres ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_table():
    psycopg = pytest.importorskip("psycopg")
    schema = f"tuneyard_conn_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".problems (id int primary key, prompt text, answer numeric, '
                     'added timestamptz default now(), tags text[])')
        for i in range(6):
            conn.execute(f'INSERT INTO "{schema}".problems (id, prompt, answer, tags) VALUES (%s, %s, %s, %s)',
                         [i, f"What is {i} squared?", i * i + (0.5 if i == 5 else 0), ["math"]])
    yield f'"{schema}".problems'
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_postgres_query(api, server, pg_table):
    dsn = "postgresql://postgres:pa55word-xyz@127.0.0.1:5432/test"   # trust auth ignores the password
    r = api.post("/v1/datasets/connect", json={
        "name": "pg-problems", "source_type": "postgres", "db_connection": dsn,
        "db_query": f"SELECT id, prompt, answer, added, tags FROM {pg_table} ORDER BY id;"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["format"], ds["num_rows"], ds["source_uri"]) == ("prompt", 6, "postgresql://127.0.0.1:5432/test")
    rows = stored_rows(server, ds["id"])
    assert rows[2]["answer"] == 4 and rows[5]["answer"] == 25.5 and rows[0]["tags"] == ["math"]
    assert rows[0]["added"].startswith("20")
    assert "pa55word" not in r.text and "pa55word" not in db_row_text(server, ds["id"])
    v = api.post("/v1/datasets/connect/validate", json={"source_type": "postgres", "db_connection": dsn,
                                                        "db_query": f"SELECT prompt FROM {pg_table}"}).json()
    assert (v["valid"], v["num_rows"], v["columns"]) == (True, 6, ["prompt"])


def test_postgres_errors_and_read_only(api, server, pg_table, monkeypatch):
    def connect(query, dsn=PG_ADMIN):
        return api.post("/v1/datasets/connect", json={"name": "pg-bad", "source_type": "postgres",
                                                      "db_connection": dsn, "db_query": query})

    assert_source_error(connect(f"SELECT nope FROM {pg_table}"), "nope", param="db_query")
    assert_source_error(connect("SELECT 1 AS prompt", f"postgresql://postgres@127.0.0.1:{free_port()}/test"),
                        "could not connect", param="db_connection")
    assert_source_error(connect(f"WITH d AS (DELETE FROM {pg_table} RETURNING *) SELECT prompt FROM d"))
    assert_source_error(connect(f"SELECT prompt FROM {pg_table}; DROP TABLE {pg_table}"))
    r = connect(f"DELETE FROM {pg_table}")
    assert r.status_code == 400 and r.json()["error"]["param"] == "db_query"
    r = connect("SELECT 1 AS prompt", "postgresql+psycopg://postgres:topsecret@/x?bad_option=1")
    assert r.status_code == 400 and "topsecret" not in r.text
    r = api.post("/v1/datasets/connect", json={"name": "x", "source_type": "postgres", "db_query": "SELECT 1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "db_connection"
    from tuneyard.services import connectors

    monkeypatch.setattr(connectors, "STATEMENT_TIMEOUT_S", 1)   # the server runs in this process
    assert_source_error(connect("SELECT 'x' AS prompt FROM pg_sleep(3)"), "statement timeout")
    assert_nothing_stored(api)
    import psycopg

    with psycopg.connect(PG_ADMIN) as conn:
        assert conn.execute(f"SELECT count(*) FROM {pg_table}").fetchone()[0] == 6
    if server.ctx.db.is_postgres:   # tuneyard's own database is never a source
        own = server.ctx.settings.resolved_database_url
        r = connect("SELECT id AS prompt FROM api_keys", own.replace("+psycopg", ""))
        assert r.status_code == 400 and "own database" in r.json()["error"]["message"]


# --- HTTPS (a loopback HTTP server) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def files_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "train.jsonl").write_bytes(jsonl(GOOD_ROWS))
    (root / "bad.jsonl").write_bytes(jsonl(GOOD_ROWS[:1]) + b"not json\n")
    (root / "huge.jsonl").write_bytes(jsonl([{"prompt": "x" * 1000}]) * 3100)   # ~3 MiB > 2 MiB limit

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass   # the connector hangs up on files past the size limit: a broken pipe here is expected

    httpd = Server(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_https_jsonl(api, server, files_url):
    r = api.post("/v1/datasets/connect", json={"name": "web", "source_type": "https",
                                               "source_uri": f"{files_url}/train.jsonl?token=abc"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["format"], ds["num_rows"], ds["source_uri"]) == ("prompt", len(GOOD_ROWS), f"{files_url}/train.jsonl")
    assert stored_rows(server, ds["id"]) == GOOD_ROWS
    again = api.post("/v1/datasets/connect", json={"name": "web", "source_type": "https",
                                                   "source_uri": f"{files_url}/train.jsonl?token=abc"})
    assert again.status_code == 200 and again.json()["id"] == ds["id"]


def test_https_errors(api, files_url):
    def connect(uri):
        return api.post("/v1/datasets/connect", json={"name": "web-bad", "source_type": "https", "source_uri": uri})

    assert_source_error(connect(f"{files_url}/missing.jsonl"), "404", param="source_uri")
    assert_source_error(connect(f"http://127.0.0.1:{free_port()}/x.jsonl"), "could not fetch")
    bad = connect(f"{files_url}/bad.jsonl")
    assert bad.status_code == 400 and "line 2" in bad.json()["error"]["message"]
    huge = connect(f"{files_url}/huge.jsonl")
    assert huge.status_code == 413, huge.text
    r = connect("http://example.com/data.jsonl")
    assert r.status_code == 400 and "https://" in r.json()["error"]["message"]
    r = connect("ftp://example.com/data.jsonl")
    assert r.status_code == 400 and r.json()["error"]["param"] == "source_uri"
    assert_nothing_stored(api)
    for name in ("missing.jsonl", "bad.jsonl", "huge.jsonl"):
        v = api.post("/v1/datasets/connect/validate",
                     json={"source_type": "https", "source_uri": f"{files_url}/{name}"}).json()
        assert v["valid"] is False and v["reason"], v
        assert ("larger than the limit" in v["reason"]) == (name == "huge.jsonl"), v


def test_unreachable_hub_fails_fast_from_the_cache(monkeypatch, files_url):
    """With the Hub unreachable (and offline mode not set), a Hub id is looked up in the local cache at once."""
    import time

    import datasets.config as hf_config
    from huggingface_hub import constants as hub

    from tuneyard.services import connectors

    monkeypatch.setattr(hf_config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(connectors, "_HUB", {"checked_at": -1e9, "saved": None})
    started = time.monotonic()
    with pytest.raises(connectors.SourceError, match="not reachable"):
        connectors._hf_split("nobody/no-such-dataset", None, "train", None)
    assert time.monotonic() - started < 10
    assert hf_config.HF_HUB_OFFLINE is True and hub.HF_HUB_OFFLINE is True
    # once the Hub answers again, the flags are put back
    monkeypatch.setattr(hub, "ENDPOINT", files_url)
    connectors._HUB["checked_at"] = -1e9
    assert connectors._hub_offline() is False
    assert hf_config.HF_HUB_OFFLINE is False and hub.HF_HUB_OFFLINE is False
