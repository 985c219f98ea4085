"""The official ``veri`` CLI, unchanged, against a live tuneyard server (sdk-contracts A.2, A.4, A.8).

veri-sdk 0.2.10 drives login/whoami/doctor, datasets (upload, list, get, connect-hf) and rewards;
0.2.45 drives api-keys (added in 0.2.44); 0.2.33 checks the ``/v1/me`` identity its whoami reads.
Every run uses ``-o json`` where the command has it, and the parsed output is compared with what the
server stored, read back over HTTP.

These run on SQLite and on Postgres (the ``server`` fixture): each CLI run costs about a second, so
both backends together stay well under a minute once the venvs exist.
"""

from __future__ import annotations

import json
import stat
import tomllib

import httpx
import pytest

DATASET_ROWS = [
    {"prompt": "What is 2 + 2?", "answer": "4"},
    {"prompt": "What is 3 * 5?", "answer": "15"},
    {"prompt": "What is 10 - 7?", "answer": "3"},
    {"prompt": "What is 12 / 4?", "answer": "3"},
    {"prompt": "What is 6 + 9?", "answer": "15"},
]

REWARD_SOURCE = '''\
import re


def _last_number(text):
    found = re.findall(r"-?\\d+", text)
    return found[-1] if found else None


def reward(prompts, completions, answer=None, **kwargs):
    """1.0 when the last number in the completion is the expected answer."""
    answers = answer or [None] * len(completions)
    return [1.0 if _last_number(c) == a else 0.0 for c, a in zip(completions, answers)]
'''


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def as_json(proc):
    out = ok(proc)
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not JSON: {exc}\nstdout:\n{out}\nstderr:\n{proc.stderr}") from None


@pytest.fixture
def org(server):
    """A fresh organization: (org_id, key, client), so each test sees only its own rows."""
    org_id, key = server.new_org()
    with server.client(key) as client:
        yield org_id, key, client


# --------------------------------------------------------------------------------------------------
# login / whoami / doctor (0.2.10)
# --------------------------------------------------------------------------------------------------

def test_login_saves_profile_that_later_commands_use(server, run_veri, veri_home, org):
    org_id, key, client = org
    no_env = {"VERI_API_URL": None, "VERI_API_KEY": None}
    ok(run_veri("0.2.10", "login", "--token", key, "--url", server.url, env=no_env))

    config_file = veri_home / ".config" / "veri" / "config.toml"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    saved = tomllib.loads(config_file.read_text())
    assert saved["active_profile"] == "default"
    assert saved["profiles"]["default"] == {"api_key": key, "api_url": server.url}

    # No env vars from here on: the saved profile is the only source of the URL and the key.
    who = as_json(run_veri("0.2.10", "whoami", "-o", "json", env=no_env))
    assert who["api_url"] == server.url
    assert who["org_id"] == org_id
    assert who["plan"] == client.get("/v1/billing/balance").json()["plan"]
    assert who["balance_usd"] == server.ctx.settings.initial_credit_usd
    assert "status" not in who  # set only on auth/network/API errors

    ds_file = veri_home / "tiny.jsonl"
    ds_file.write_text("".join(json.dumps(r) + "\n" for r in DATASET_ROWS[:2]))
    uploaded = as_json(run_veri("0.2.10", "datasets", "upload", str(ds_file), "--name", "via-profile", "-o", "json",
                                env=no_env))
    assert client.get(f"/v1/datasets/{uploaded['id']}").json()["name"] == "via-profile"
    listed = as_json(run_veri("0.2.10", "datasets", "list", "-o", "json", env=no_env))
    assert [d["id"] for d in listed] == [uploaded["id"]]


def test_login_with_a_bad_key_exits_4_and_saves_nothing(server, run_veri, veri_home):
    proc = run_veri("0.2.10", "login", "--token", "vk_" + "0" * 43, "--url", server.url,
                    env={"VERI_API_URL": None, "VERI_API_KEY": None})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert not (veri_home / ".config" / "veri" / "config.toml").exists()


def test_whoami_with_env_vars(server, run_veri, org):
    org_id, key, client = org
    who = as_json(run_veri("0.2.10", "whoami", "-o", "json", key=key))
    balance = client.get("/v1/billing/balance").json()
    assert who["org_id"] == org_id == balance["org_id"]
    assert who["balance_usd"] == balance["balance_usd"]
    assert who["sdk_version"] == "0.2.10"
    assert who["api_key"].startswith(key[:12]) and key not in json.dumps(who)

    revoked = as_json(run_veri("0.2.10", "whoami", "-o", "json", key="vk_" + "1" * 43))
    assert revoked["status"] == "invalid_or_expired_token"


def test_doctor_passes_every_check(server, run_veri, veri_home):
    ok(run_veri("0.2.10", "login", "--token", server.key, "--url", server.url,
                env={"VERI_API_URL": None, "VERI_API_KEY": None}))
    rows = as_json(run_veri("0.2.10", "doctor", "-o", "json"))
    checks = {r["check"]: r for r in rows}
    assert set(checks) >= {"python", "sdk", "config", "credentials", "network"}
    assert all(r["status"] == "pass" for r in rows), rows
    assert checks["network"]["message"] == f"{server.url} → HTTP 200"
    assert checks["config"]["message"] == str(veri_home / ".config" / "veri" / "config.toml")


def test_newer_whoami_and_doctor_read_v1_me(server, run_veri, org):
    """0.2.27+ whoami and 0.2.45 doctor also call ``GET /v1/me`` (not in the seed)."""
    org_id, key, client = org
    me = client.get("/v1/me").json()
    who = as_json(run_veri("0.2.33", "whoami", "-o", "json", key=key))
    assert who["org_id"] == org_id
    assert who["user_id"] == me["user_id"]
    assert who["plan"] == me["plan"]
    assert who["balance_usd"] == server.ctx.settings.initial_credit_usd
    assert "status" not in who

    rows = as_json(run_veri("0.2.45", "doctor", "-o", "json", key=key))
    checks = {r["check"]: r for r in rows}
    assert checks["credentials"]["status"] == "pass", rows
    assert checks["network"]["status"] == "pass", rows
    bad = {r["check"]: r for r in as_json(run_veri("0.2.45", "doctor", "-o", "json", key="vk_" + "2" * 43))}
    assert bad["credentials"]["status"] == "fail" and "HTTP 401" in bad["credentials"]["message"]


# --------------------------------------------------------------------------------------------------
# datasets (0.2.10)
# --------------------------------------------------------------------------------------------------

def test_datasets_upload_list_get(server, run_veri, veri_home, org):
    _, key, client = org
    path = veri_home / "gsm-mini.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in DATASET_ROWS))

    up = as_json(run_veri("0.2.10", "datasets", "upload", str(path), "--name", "gsm-mini", "-o", "json", key=key))
    assert up["id"].startswith("ds_")
    assert up["name"] == "gsm-mini"
    assert up["source_type"] == "upload"

    stored = client.get(f"/v1/datasets/{up['id']}").json()
    assert stored["name"] == "gsm-mini"
    assert stored["num_rows"] == len(DATASET_ROWS)
    assert stored["format"] == "prompt"
    assert set(stored["columns"]) == {"prompt", "answer"}
    assert stored["filename"] == "gsm-mini.jsonl"
    assert stored["bytes"] == path.stat().st_size

    # The name defaults to the file stem; -q prints only the id.
    default_name = ok(run_veri("0.2.10", "datasets", "upload", str(path), "-q", key=key)).strip()
    assert default_name.startswith("ds_")
    assert client.get(f"/v1/datasets/{default_name}").json()["name"] == "gsm-mini"

    listed = as_json(run_veri("0.2.10", "datasets", "list", "-o", "json", key=key))
    assert [d["id"] for d in listed] == [default_name, up["id"]]  # newest first
    assert {d["name"] for d in listed} == {"gsm-mini"}
    page = as_json(run_veri("0.2.10", "datasets", "list", "--limit", "1", "--after", default_name, "-o", "json",
                            key=key))
    assert [d["id"] for d in page] == [up["id"]]

    got = as_json(run_veri("0.2.10", "datasets", "get", up["id"], "-o", "json", key=key))
    assert got == {"id": up["id"], "name": "gsm-mini", "source_type": "upload", "source_uri": "",
                   "huggingface_dataset": ""}


def test_datasets_get_unknown_or_other_orgs_id_exits_2(server, run_veri, veri_home, org):
    _, key, _ = org
    path = veri_home / "d.jsonl"
    path.write_text(json.dumps(DATASET_ROWS[0]) + "\n")
    theirs = as_json(run_veri("0.2.10", "datasets", "upload", str(path), "-o", "json"))  # bootstrap org
    for ds_id in (theirs["id"], "ds_doesnotexist"):
        proc = run_veri("0.2.10", "datasets", "get", ds_id, "-o", "json", key=key)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"Could not fetch dataset {ds_id}" in proc.stderr


def test_datasets_upload_rejected_by_server_fails(server, run_veri, veri_home, org):
    """A file that passes the CLI's structural check but not the server's (no usable columns)."""
    _, key, client = org
    path = veri_home / "odd.jsonl"
    path.write_text('{"foo": 1}\n{"foo": 2}\n')
    proc = run_veri("0.2.10", "datasets", "upload", str(path), "--name", "odd", key=key)
    assert proc.returncode != 0
    assert client.get("/v1/datasets").json()["data"] == []


def _connect_route_exists(server) -> bool:
    return "/v1/datasets/connect" in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_datasets_connect_hf_from_local_dataset_folder(server, run_veri, tmp_path, org):
    if not _connect_route_exists(server):
        pytest.skip("POST /v1/datasets/connect is not registered in this build yet")
    import datasets as hf

    folder = tmp_path / "gsm-local"
    train = hf.Dataset.from_dict({"question": [r["prompt"] for r in DATASET_ROWS],
                                  "answer": [r["answer"] for r in DATASET_ROWS]})
    test = hf.Dataset.from_dict({"question": ["What is 1 + 1?"], "answer": ["2"]})
    hf.DatasetDict({"train": train, "test": test}).save_to_disk(str(folder))

    _, key, client = org
    args = ("datasets", "connect-hf", str(folder), "--split", "train", "--map", "question=prompt",
            "--name", "gsm-local", "-o", "json")
    connected = as_json(run_veri("0.2.10", *args, key=key))
    assert connected["id"].startswith("ds_")
    assert connected["name"] == "gsm-local"
    assert connected["source_type"] == "hf"
    assert connected["huggingface_dataset"] == str(folder)

    stored = client.get(f"/v1/datasets/{connected['id']}").json()
    assert stored["num_rows"] == len(DATASET_ROWS)  # the train split only
    assert stored["format"] == "prompt"
    assert set(stored["columns"]) == {"prompt", "answer"}
    assert stored["preview"][0] == DATASET_ROWS[0]

    # Connecting is idempotent for the same name and source (``veri train`` relies on it).
    again = as_json(run_veri("0.2.10", *args, key=key))
    assert again["id"] == connected["id"]
    got = as_json(run_veri("0.2.10", "datasets", "get", connected["id"], "-o", "json", key=key))
    assert got["source_type"] == "hf" and got["name"] == "gsm-local"


# --------------------------------------------------------------------------------------------------
# rewards (0.2.10; the route was removed from the SDK in 0.2.34)
# --------------------------------------------------------------------------------------------------

def test_rewards_upload_list_get(server, run_veri, veri_home, org):
    _, key, client = org
    path = veri_home / "reward.py"
    path.write_text(REWARD_SOURCE)

    up = as_json(run_veri("0.2.10", "-o", "json", "rewards", "upload", str(path), "--name", "r", key=key))
    assert up["id"].startswith("rf_")
    assert up == {"id": up["id"], "name": "r", "format": "trl"}
    stored = client.get(f"/v1/reward_functions/{up['id']}").json()
    assert stored["name"] == "r" and stored["format"] == "trl"
    assert stored["entrypoint"] == "reward"
    assert stored["source"] == REWARD_SOURCE

    listed = as_json(run_veri("0.2.10", "rewards", "list", "-o", "json", key=key))
    assert listed == [{"id": up["id"], "name": "r", "format": "trl"}]
    got = as_json(run_veri("0.2.10", "rewards", "get", up["id"], "-o", "json", key=key))
    assert got == {"id": up["id"], "name": "r", "format": "trl"}

    proc = run_veri("0.2.10", "rewards", "get", "rf_doesnotexist", "-o", "json", key=key)
    assert proc.returncode == 2


def test_rewards_upload_rejected_by_server_shows_the_reason(server, run_veri, veri_home, org):
    """Parses and defines a function (the CLI's own check passes) but is no TRL reward: the server's
    400 message reaches the user."""
    _, key, client = org
    path = veri_home / "not_a_reward.py"
    path.write_text("async def reward(prompts, completions, **kwargs):\n    return [1.0]\n")
    proc = run_veri("0.2.10", "rewards", "upload", str(path), "--name", "bad", key=key)
    assert proc.returncode != 0
    assert "async" in proc.stdout + proc.stderr
    assert client.get("/v1/reward_functions").json()["data"] == []


# --------------------------------------------------------------------------------------------------
# api-keys (0.2.45)
# --------------------------------------------------------------------------------------------------

def test_api_keys_create_list_revoke(server, run_veri, org):
    org_id, key, client = org
    created = as_json(run_veri("0.2.45", "api-keys", "create", "ci-bot", "-o", "json", key=key))
    plaintext = created["key"]
    assert plaintext.startswith("vk_")
    assert created["id"].startswith("key_")
    assert created["name"] == "ci-bot" and created["kind"] == "user"

    # The new key works, through the CLI too.
    with server.client(plaintext) as c:
        assert c.get("/v1/me").json()["api_key_id"] == created["id"]
        assert c.get("/v1/billing/balance").json()["org_id"] == org_id
    listed_proc = run_veri("0.2.45", "api-keys", "list", "-o", "json", key=plaintext)
    listed = as_json(listed_proc)
    assert plaintext not in listed_proc.stdout
    rows = {k["id"]: k for k in listed}
    assert created["id"] in rows and len(rows) == 2  # the org's first key and this one
    assert rows[created["id"]]["name"] == "ci-bot"
    assert plaintext.startswith(rows[created["id"]]["key_prefix"])
    assert "key" not in rows[created["id"]]

    table = ok(run_veri("0.2.45", "api-keys", "list", key=key))  # the table shows the prefix column
    assert created["id"] in table and rows[created["id"]]["key_prefix"] in table

    revoked = as_json(run_veri("0.2.45", "api-keys", "revoke", created["id"], "-o", "json", key=key))
    assert revoked["id"] == created["id"]
    assert revoked["deleted"] is True

    # The very next request with the revoked key is refused: over HTTP and through the CLI (exit 4).
    with server.client(plaintext) as c:
        r = c.get("/v1/billing/balance")
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
    proc = run_veri("0.2.45", "api-keys", "list", "-o", "json", key=plaintext)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert created["id"] not in [k["id"] for k in client.get("/v1/api_keys").json()["data"]]

    # Revoking an unknown id (or again) is a clean API error, not a crash.
    proc = run_veri("0.2.45", "api-keys", "revoke", created["id"], key=key)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_api_keys_create_quiet_and_expiry(server, run_veri, org):
    _, key, client = org
    plaintext = ok(run_veri("0.2.45", "api-keys", "create", "short", "--expires-in", "3600", "-q", key=key)).strip()
    assert plaintext.startswith("vk_")
    with server.client(plaintext) as c:
        me = c.get("/v1/me").json()
    row = next(k for k in client.get("/v1/api_keys").json()["data"] if k["id"] == me["api_key_id"])
    assert row["name"] == "short" and row["expires_at"]


def test_sdk_client_against_server(server, veri_python, org):
    """The 0.2.10 Python SDK (``Client()`` from the env vars) parses our objects."""
    org_id, key, client = org
    code = (
        "import json, tempfile, os\n"
        "from veri_sdk import Client\n"
        "c = Client()\n"
        "p = os.path.join(tempfile.mkdtemp(), 'r.py')\n"
        "open(p, 'w').write('def reward(prompts, completions, **kwargs):\\n    return [0.0]*len(completions)\\n')\n"
        "rf = c.reward_functions.upload(p, name='sdk-r')\n"
        "print(json.dumps({'rf': [rf.id, rf.name, rf.format], 'list': [r.id for r in c.reward_functions.list()]}))\n"
    )
    proc = veri_python("0.2.10", code, key=key)
    out = as_json(proc)
    rf_id, name, fmt = out["rf"]
    assert name == "sdk-r" and fmt == "trl" and out["list"] == [rf_id]
    assert client.get(f"/v1/reward_functions/{rf_id}").json()["entrypoint"] == "reward"
