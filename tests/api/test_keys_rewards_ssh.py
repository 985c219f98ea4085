"""API keys, reward functions and SSH keys over HTTP, the admin CLI, and ``tuneyard serve``'s first start.

Everything here runs against a live server on SQLite and on Postgres (the ``server`` fixture), except
the ``tuneyard serve`` tests, which start the real command on a fresh SQLite data dir.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519

from tuneyard.services import secrets as tuneyard_secrets
from tuneyard.store.models import SshKey


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def org_of(client: httpx.Client) -> str:
    return client.get("/v1/billing/balance").json()["org_id"]


def assert_error(resp: httpx.Response, status: int, *, param: str | None = None, contains: str = "") -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"type", "code", "message", "param"}
    if param is not None:
        assert err["param"] == param, err
    assert contains.lower() in err["message"].lower(), err
    return err


# --------------------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------------------

def test_api_key_create_returns_plaintext_once_and_list_hides_it(server, api):
    r = api.post("/v1/api_keys", json={"name": "ci-runner"})
    assert r.status_code == 201, r.text
    created = r.json()
    plaintext = created["key"]
    assert plaintext.startswith("vk_") and len(plaintext) >= 3 + 43  # vk_ + 32 random bytes, base64
    assert created["id"].startswith("key_")
    assert created["object"] == "api_key"
    assert created["name"] == "ci-runner"
    assert created["kind"] == "user"
    assert created["key_prefix"] and plaintext.startswith(created["key_prefix"])
    assert len(created["key_prefix"]) < len(plaintext) // 2
    assert created["expires_at"] is None

    digest = hashlib.sha256(plaintext.encode()).hexdigest()
    listing = api.get("/v1/api_keys")
    assert listing.status_code == 200
    assert plaintext not in listing.text and digest not in listing.text
    body = listing.json()
    assert body["object"] == "list" and body["has_more"] is False
    rows = {row["id"]: row for row in body["data"]}
    assert created["id"] in rows
    row = rows[created["id"]]
    assert "key" not in row and "key_hash" not in row
    assert row["key_prefix"] == created["key_prefix"]
    assert row["name"] == "ci-runner"
    for value in row.values():
        assert value not in (plaintext, digest)

    # The key works; the plaintext is never shown again.
    with server.client(plaintext) as c:
        assert c.get("/v1/billing/balance").status_code == 200
        again = c.get("/v1/api_keys")
        assert plaintext not in again.text and digest not in again.text


def test_last_used_at_is_set_after_use(server, api):
    created = api.post("/v1/api_keys", json={"name": "fresh"}).json()

    def row() -> dict:
        return next(k for k in api.get("/v1/api_keys").json()["data"] if k["id"] == created["id"])

    assert row()["last_used_at"] is None
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    with server.client(created["key"]) as c:
        assert c.get("/v1/datasets").status_code == 200
    used = row()["last_used_at"]
    assert used is not None
    assert before <= parse_ts(used) <= datetime.now(timezone.utc) + timedelta(seconds=5)


def test_revoke_returns_json_and_key_is_refused_on_next_request(server, api):
    created = api.post("/v1/api_keys", json={"name": "to-revoke"}).json()
    with server.client(created["key"]) as victim:
        assert victim.get("/v1/billing/balance").status_code == 200
        r = api.delete(f"/v1/api_keys/{created['id']}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert body["id"] == created["id"]
        assert body["deleted"] is True
        assert body["revoked_at"]
        # The very next request with the revoked key is refused.
        assert_error(victim.get("/v1/billing/balance"), 401)
        assert_error(victim.get("/v1/datasets"), 401)
    assert created["id"] not in [k["id"] for k in api.get("/v1/api_keys").json()["data"]]
    # Revoking again: the key no longer exists as far as the API is concerned.
    assert_error(api.delete(f"/v1/api_keys/{created['id']}"), 404)


def test_a_key_can_revoke_itself(server, api):
    created = api.post("/v1/api_keys", json={"name": "self"}).json()
    with server.client(created["key"]) as c:
        assert c.delete(f"/v1/api_keys/{created['id']}").status_code == 200
        assert_error(c.get("/v1/api_keys"), 401)


def test_another_orgs_key_id_is_404_and_untouched(server, api):
    _, other_key = server.new_org()
    with server.client(other_key) as other:
        theirs = other.post("/v1/api_keys", json={"name": "theirs"}).json()
        assert_error(api.delete(f"/v1/api_keys/{theirs['id']}"), 404)
        assert theirs["id"] not in [k["id"] for k in api.get("/v1/api_keys").json()["data"]]
        # Still valid for its owner.
        with server.client(theirs["key"]) as c:
            assert c.get("/v1/billing/balance").status_code == 200
    assert_error(api.delete("/v1/api_keys/key_doesnotexist000000000000"), 404)


def test_api_key_bad_fields_are_rejected_not_500(api):
    for body, param in (({"name": "n" * 300}, "name"), ({"name": "x", "deployment_id": "d" * 100}, "deployment_id"),
                        ({"name": "x", "kind": "root"}, "kind")):
        r = api.post("/v1/api_keys", json=body)
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["param"] == param


def test_expires_in_seconds(server, api):
    long_lived = api.post("/v1/api_keys", json={"name": "hour", "expires_in_seconds": 3600}).json()
    expected = datetime.now(timezone.utc) + timedelta(seconds=3600)
    assert abs((parse_ts(long_lived["expires_at"]) - expected).total_seconds()) < 30
    listed = next(k for k in api.get("/v1/api_keys").json()["data"] if k["id"] == long_lived["id"])
    assert listed["expires_at"] == long_lived["expires_at"]

    short = api.post("/v1/api_keys", json={"name": "blink", "expires_in_seconds": 1}).json()
    with server.client(short["key"]) as c:
        deadline = time.time() + 10
        while time.time() < deadline:
            r = c.get("/v1/billing/balance")
            if r.status_code == 401:
                break
            assert r.status_code == 200
            time.sleep(0.25)
        err = assert_error(r, 401)
        assert err["code"] == "expired_api_key"

    for bad in (0, -5, 10**12, 10**20):  # the large ones would overflow a datetime
        assert_error(api.post("/v1/api_keys", json={"name": "x", "expires_in_seconds": bad}), 400,
                     param="expires_in_seconds")


# --------------------------------------------------------------------------------------------------
# Reward functions
# --------------------------------------------------------------------------------------------------

TRL_REWARD = b'''\
def reward(prompts, completions, **kwargs):
    """One score per completion."""
    return [1.0 if "4" in c else 0.0 for c in completions]
'''

MILES_REWARD = b'''\
async def reward(args, sample, **kwargs):
    return 1.0 if "4" in sample.response else 0.0
'''

HELPERS_REWARD = b'''\
import math
import re
from collections import Counter

NUMBER = re.compile(r"-?\\d+")


class Scorer:
    def __call__(self, text):
        return 1.0


def _normalise(text):
    return text.strip().lower()


def extract(text, default=None):
    found = NUMBER.findall(text)
    return found[-1] if found else default


def score_answers(prompts, completions, answer=None, **kwargs):
    answers = answer or [None] * len(completions)
    return [float(extract(_normalise(c)) == a) for c, a in zip(completions, answers)]
'''


def upload_reward(client: httpx.Client, content: bytes, *, name: str | None = "r", fmt: str | None = None,
                  filename: str = "reward.py") -> httpx.Response:
    data = {}
    if name is not None:
        data["name"] = name
    if fmt is not None:
        data["format"] = fmt
    return client.post("/v1/reward_functions", files={"file": (filename, content, "text/x-python")}, data=data)


def test_trl_reward_upload_get_list(api):
    r = upload_reward(api, TRL_REWARD, name="math-trl")
    assert r.status_code == 201, r.text
    rf = r.json()
    assert rf["id"].startswith("rf_")
    assert rf["object"] == "reward_function"
    assert rf["name"] == "math-trl"
    assert rf["format"] == "trl"
    assert rf["entrypoint"] == "reward"
    assert rf["bytes"] == len(TRL_REWARD)
    assert rf["sha256"] == hashlib.sha256(TRL_REWARD).hexdigest()

    got = api.get(f"/v1/reward_functions/{rf['id']}").json()
    assert got["id"] == rf["id"] and got["name"] == "math-trl"
    assert got["source"] == TRL_REWARD.decode()
    listing = api.get("/v1/reward_functions").json()
    assert [x["id"] for x in listing["data"]] == [rf["id"]]


def test_name_defaults_to_file_stem(api):
    r = upload_reward(api, TRL_REWARD, name=None, filename="reward_ab12cd.py")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "reward_ab12cd"


def test_miles_reward_upload(api):
    r = upload_reward(api, MILES_REWARD, name="math-miles", fmt="miles")
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "miles"
    assert r.json()["entrypoint"] == "reward"


def test_entrypoint_found_by_signature_with_helpers_and_imports(api):
    r = upload_reward(api, HELPERS_REWARD, name="helpers", filename="reward_tmp91x.py")
    assert r.status_code == 201, r.text
    assert r.json()["entrypoint"] == "score_answers"


def test_entrypoint_named_reward_wins_over_other_fitting_functions(api):
    source = HELPERS_REWARD + b"\n\ndef reward(prompts, completions, **kwargs):\n    return [0.0] * len(completions)\n"
    r = upload_reward(api, source)
    assert r.status_code == 201, r.text
    assert r.json()["entrypoint"] == "reward"


def test_miles_entrypoint_found_by_signature(api):
    source = b"import asyncio\n\ndef helper(x):\n    return x\n\nasync def grade(args, sample, **kwargs):\n    return 0.5\n"
    r = upload_reward(api, source, fmt="miles")
    assert r.status_code == 201, r.text
    assert r.json()["entrypoint"] == "grade"


BAD_REWARDS = [
    pytest.param(b"def reward(prompts, completions, **kwargs):\n    total = 0\n    return total +\n", "trl", "file",
                 "line 3", id="syntax-error"),
    pytest.param(b"import math\nTHRESHOLD = 0.5\n", "trl", "file", "no reward function", id="no-function"),
    pytest.param(b"async def reward(prompts, completions, **kwargs):\n    return [1.0]\n", "trl", "file", "async",
                 id="trl-async"),
    pytest.param(b"def reward(args, sample, **kwargs):\n    return 1.0\n", "miles", "file", "async def",
                 id="miles-sync"),
    pytest.param(b"def reward(prompts, completions):\n    return [1.0]\n", "trl", "file", "**kwargs",
                 id="trl-missing-kwargs"),
    pytest.param(b"async def reward(args, sample):\n    return 1.0\n", "miles", "file", "**kwargs",
                 id="miles-missing-kwargs"),
    pytest.param(b"def reward(x, **kwargs):\n    return [1.0]\n", "trl", "file", "prompts, completions",
                 id="trl-too-few-params"),
    pytest.param("def reward(prompts, completions, **kwargs):\n    return ['é']\n".encode("latin-1"), "trl",
                 "file", "utf-8", id="not-utf8"),
    pytest.param(TRL_REWARD, "pytorch", "format", "format", id="bad-format"),
    pytest.param(b"def a(prompts, completions, **kwargs):\n    return []\n\n"
                 b"def b(prompts, completions, **kwargs):\n    return []\n", "trl", "file", "several",
                 id="ambiguous"),
]


@pytest.mark.parametrize(("content", "fmt", "param", "message"), BAD_REWARDS)
def test_bad_reward_is_400_and_nothing_stored(server, api, content, fmt, param, message):
    r = upload_reward(api, content, fmt=fmt, filename="bad.py")
    err = assert_error(r, 400, param=param, contains=message)
    assert err["type"] == "invalid_request_error"
    assert api.get("/v1/reward_functions").json()["data"] == []
    org_id = org_of(api)
    assert server.ctx.blobs.list(f"orgs/{org_id}/reward_functions") == []
    leftovers = list((server.ctx.settings.blob_root / ".tmp").iterdir())
    assert leftovers == [], leftovers


def test_reward_name_too_long_is_rejected_not_500(api):
    r = upload_reward(api, TRL_REWARD, name="n" * 300)
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["param"] == "name"
    assert api.get("/v1/reward_functions").json()["data"] == []


def test_reward_missing_file_is_422_naming_file(api):
    r = api.post("/v1/reward_functions", data={"name": "x"})
    assert_error(r, 422, param="file")


def test_reward_cross_org_is_404(server, api):
    rf = upload_reward(api, TRL_REWARD, name="mine").json()
    _, other_key = server.new_org()
    with server.client(other_key) as other:
        assert_error(other.get(f"/v1/reward_functions/{rf['id']}"), 404)
        assert_error(other.delete(f"/v1/reward_functions/{rf['id']}"), 404)
        assert other.get("/v1/reward_functions").json()["data"] == []
    assert api.get(f"/v1/reward_functions/{rf['id']}").status_code == 200


def test_reward_delete(server, api):
    rf = upload_reward(api, TRL_REWARD, name="gone").json()
    org_id = org_of(api)
    assert len(server.ctx.blobs.list(f"orgs/{org_id}/reward_functions")) == 1
    r = api.delete(f"/v1/reward_functions/{rf['id']}")
    assert r.status_code == 200
    assert r.json() == {"id": rf["id"], "object": "reward_function", "deleted": True}
    assert_error(api.get(f"/v1/reward_functions/{rf['id']}"), 404)
    assert_error(api.delete(f"/v1/reward_functions/{rf['id']}"), 404)
    assert server.ctx.blobs.list(f"orgs/{org_id}/reward_functions") == []


# --------------------------------------------------------------------------------------------------
# SSH keys
# --------------------------------------------------------------------------------------------------

def ed25519_pair(comment: str = "alice@laptop") -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode() + f" {comment}", private


def rsa_pair(comment: str = "ci@runner") -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode() + f" {comment}", private


def expected_fingerprint(public: str, tmp_path: Path) -> str:
    """What ``ssh-keygen -lf`` prints, computed here without the server's code (and checked against
    ssh-keygen itself when it is installed)."""
    blob = base64.b64decode(public.split()[1])
    ours = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    if shutil.which("ssh-keygen"):
        path = tmp_path / f"{uuid.uuid4().hex}.pub"
        path.write_text(public + "\n")
        out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True)
        assert out.stdout.split()[1] == ours, out.stdout
    return ours


def secret_fragments(private: str) -> list[str]:
    """The private key text and each line of its base64 body: none may appear in any response."""
    lines = [ln for ln in private.strip().splitlines() if ln and not ln.startswith("-----")]
    return [private.strip(), *lines]


def assert_no_key_material(text: str, private: str) -> None:
    for fragment in secret_fragments(private):
        assert fragment not in text
    assert "PRIVATE KEY" not in text


@pytest.mark.parametrize("make_pair", [ed25519_pair, rsa_pair], ids=["ed25519", "rsa"])
def test_ssh_key_upload_list_get_delete(server, api, tmp_path, make_pair):
    public, private = make_pair()
    r = api.post("/v1/ssh_keys", json={"name": "gpu-box", "public_key": public, "private_key": private,
                                       "provider": "lambda"})
    assert r.status_code == 201, r.text
    key = r.json()
    assert key["id"].startswith("sk_")
    assert key["object"] == "ssh_key"
    assert key["name"] == "gpu-box" and key["provider"] == "lambda"
    assert key["fingerprint"] == expected_fingerprint(public, tmp_path)
    assert key["key_type"] == public.split()[0]
    assert_no_key_material(r.text, private)

    listing = api.get("/v1/ssh_keys")
    assert [k["id"] for k in listing.json()["data"]] == [key["id"]]
    assert listing.json()["data"][0]["fingerprint"] == key["fingerprint"]
    assert_no_key_material(listing.text, private)
    got = api.get(f"/v1/ssh_keys/{key['id']}")
    assert got.status_code == 200 and got.json()["fingerprint"] == key["fingerprint"]
    assert_no_key_material(got.text, private)

    # At rest: ciphertext only, which decrypts (with the server's master key) to the uploaded key.
    with server.ctx.db.session() as s:
        row = s.query(SshKey).filter_by(id=key["id"]).one()
        stored = row.private_key_encrypted
    assert isinstance(stored, str)
    assert_no_key_material(stored, private)
    assert tuneyard_secrets.decrypt(server.ctx.settings, stored).decode() == private
    for response in (r, listing, got):
        assert stored not in response.text

    d = api.delete(f"/v1/ssh_keys/{key['id']}")
    assert d.status_code == 200
    assert d.json() == {"id": key["id"], "object": "ssh_key", "deleted": True}
    assert_error(api.get(f"/v1/ssh_keys/{key['id']}"), 404)
    assert api.get("/v1/ssh_keys").json()["data"] == []
    with server.ctx.db.session() as s:
        assert s.query(SshKey).filter_by(id=key["id"]).first() is None


def test_ssh_key_mismatched_pair_is_400_on_private_key(api):
    public, _ = ed25519_pair()
    _, other_private = ed25519_pair()
    assert_error(api.post("/v1/ssh_keys", json={"name": "x", "public_key": public, "private_key": other_private}),
                 400, param="private_key", contains="does not match")
    _, rsa_private = rsa_pair()
    assert_error(api.post("/v1/ssh_keys", json={"name": "x", "public_key": public, "private_key": rsa_private}),
                 400, param="private_key")
    assert api.get("/v1/ssh_keys").json()["data"] == []


@pytest.mark.parametrize("public_key", [
    "not a key",
    "ssh-ed25519 !!!not-base64!!!",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",  # truncated key blob
    "ssh-rsa " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519garbage").decode(),  # type/blob mismatch
    "ssh-unknowntype AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
    "",
], ids=["words", "bad-base64", "truncated", "type-mismatch", "unknown-type", "empty"])
def test_ssh_key_malformed_public_key_is_400(api, public_key):
    _, private = ed25519_pair()
    r = api.post("/v1/ssh_keys", json={"name": "x", "public_key": public_key, "private_key": private})
    assert_error(r, 400, param="public_key")
    assert_no_key_material(r.text, private)
    assert api.get("/v1/ssh_keys").json()["data"] == []


@pytest.mark.parametrize("private_key", [
    "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
    "garbage",
    "",
], ids=["bad-openssh", "garbage", "empty"])
def test_ssh_key_malformed_private_key_is_400(api, private_key):
    public, _ = ed25519_pair()
    assert_error(api.post("/v1/ssh_keys", json={"name": "x", "public_key": public, "private_key": private_key}),
                 400, param="private_key")


def test_ssh_key_passphrase_protected_private_key_is_400(api, tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.BestAvailableEncryption(b"hunter2")).decode()
    assert_error(api.post("/v1/ssh_keys", json={"name": "x", "public_key": public, "private_key": pkcs8}),
                 400, param="private_key", contains="encrypted")
    if shutil.which("ssh-keygen"):  # an OpenSSH-format key with a passphrase, as ssh-keygen writes it
        path = tmp_path / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "hunter2", "-f", str(path)], check=True)
        assert_error(api.post("/v1/ssh_keys", json={"name": "x", "public_key": (tmp_path / "id_ed25519.pub")
                                                    .read_text(), "private_key": path.read_text()}),
                     400, param="private_key", contains="password")


def test_ssh_key_non_ssh_private_key_type_is_400(api):
    public, _ = ed25519_pair()
    x25519_pem = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    assert_error(api.post("/v1/ssh_keys", json={"name": "x", "public_key": public, "private_key": x25519_pem}),
                 400, param="private_key")


def test_ssh_key_keygen_pair_is_accepted(server, api, tmp_path):
    """A pair exactly as ``ssh-keygen`` writes it (OpenSSH private format, comment in the public key)."""
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed")
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@host", "-f", str(path)], check=True)
    public = (tmp_path / "id_ed25519.pub").read_text()
    r = api.post("/v1/ssh_keys", json={"name": "keygen", "public_key": public, "private_key": path.read_text()})
    assert r.status_code == 201, r.text
    printed = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout
    assert r.json()["fingerprint"] == printed.split()[1]
    assert_no_key_material(r.text, path.read_text())


def test_ssh_key_overlong_fields_are_rejected_not_500(api):
    public, private = ed25519_pair()
    for field, value in (("name", "n" * 300), ("provider", "p" * 100)):
        body = {"name": "x", "public_key": public, "private_key": private, field: value}
        r = api.post("/v1/ssh_keys", json=body)
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["param"] == field
    assert api.get("/v1/ssh_keys").json()["data"] == []


def test_ssh_key_missing_field_is_422(api):
    public, _ = ed25519_pair()
    assert_error(api.post("/v1/ssh_keys", json={"name": "x", "public_key": public}), 422, param="private_key")


def test_ssh_key_cross_org_is_404(server, api):
    public, private = ed25519_pair()
    key = api.post("/v1/ssh_keys", json={"name": "mine", "public_key": public, "private_key": private}).json()
    _, other_key = server.new_org()
    with server.client(other_key) as other:
        assert_error(other.get(f"/v1/ssh_keys/{key['id']}"), 404)
        assert_error(other.delete(f"/v1/ssh_keys/{key['id']}"), 404)
        assert other.get("/v1/ssh_keys").json()["data"] == []
    assert api.get(f"/v1/ssh_keys/{key['id']}").status_code == 200


# --------------------------------------------------------------------------------------------------
# Admin CLI: tuneyard orgs create / keys create, against the live server's database
# --------------------------------------------------------------------------------------------------

def _clean_env(**extra: str) -> dict[str, str]:
    # COLUMNS: rich wraps console output at 80 columns when stdout is not a terminal, which splits the
    # key file's path across lines in `tuneyard serve`'s first-start message (cli/main.py prints it with
    # rich). Until that message is printed unwrapped, a wide COLUMNS keeps the path on one line here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEYARD_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", **extra)
    return env


def tuneyard_cli(server, *args: str) -> subprocess.CompletedProcess:
    settings = server.ctx.settings
    env = _clean_env(TUNEYARD_DATA_DIR=str(settings.data_dir))
    if settings.database_url:
        env["TUNEYARD_DATABASE_URL"] = settings.database_url
    return subprocess.run([sys.executable, "-m", "tuneyard", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_cli_orgs_create_and_keys_create_work_against_live_server(server):
    name = f"acme-{uuid.uuid4().hex[:6]}"
    out = tuneyard_cli(server, "orgs", "create", name, "--json")
    assert out.returncode == 0, out.stderr
    org = json.loads(out.stdout)
    assert org["id"].startswith("org_") and org["name"] == name
    assert org["api_key"].startswith("vk_")
    with server.client(org["api_key"]) as c:
        bal = c.get("/v1/billing/balance")
        assert bal.status_code == 200
        assert bal.json()["org_id"] == org["id"]
        assert bal.json()["balance_usd"] == server.ctx.settings.initial_credit_usd
        assert c.get("/v1/me").json()["api_key_id"] == org["api_key_id"]

    out = tuneyard_cli(server, "keys", "create", "--org", name, "--name", "deploy-bot", "--json")
    assert out.returncode == 0, out.stderr
    key = json.loads(out.stdout)
    assert key["org_id"] == org["id"]
    assert key["key"].startswith(key["key_prefix"])
    with server.client(key["key"]) as c:
        me = c.get("/v1/me").json()
        assert me["org_id"] == org["id"] and me["api_key_id"] == key["id"]
        names = {k["id"]: k["name"] for k in c.get("/v1/api_keys").json()["data"]}
        assert names[key["id"]] == "deploy-bot"
        assert org["api_key_id"] in names
        assert key["key"] not in json.dumps(c.get("/v1/api_keys").json())

    # By id works too; errors are clean messages with exit code 1, not tracebacks.
    out = tuneyard_cli(server, "keys", "create", "--org", org["id"], "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["org_id"] == org["id"]
    dup = tuneyard_cli(server, "orgs", "create", name, "--json")
    assert dup.returncode == 1 and "already exists" in dup.stderr and "Traceback" not in dup.stderr
    missing = tuneyard_cli(server, "keys", "create", "--org", "no-such-org", "--json")
    assert missing.returncode == 1 and "no-such-org" in missing.stderr and "Traceback" not in missing.stderr


# --------------------------------------------------------------------------------------------------
# tuneyard serve: first start creates the default org and a key in a 0600 file; later starts do not
# --------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, data_dir: Path, log: Path, **env: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._fh = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuneyard", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._fh, stderr=subprocess.STDOUT,
            env=_clean_env(TUNEYARD_DATA_DIR=str(data_dir), **env), start_new_session=True)
        deadline = time.time() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"tuneyard serve exited {self.proc.returncode}:\n{self.output}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"tuneyard serve did not come up:\n{self.output}")
            time.sleep(0.2)

    @property
    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _balance(url: str, key: str) -> httpx.Response:
    return httpx.get(url + "/v1/billing/balance", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_serve_first_start_writes_key_file_and_second_start_does_not(tmp_path):
    data_dir = tmp_path / "data"
    key_file = data_dir / "bootstrap_api_key"
    with Served(data_dir, tmp_path / "first.log") as srv:
        assert srv.proc.poll() is None
        out = srv.output
        assert str(key_file) in out, out
        assert "First start" in out
        assert key_file.is_file()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key.startswith("vk_") and len(key) >= 40
        assert key not in out  # the key itself is never printed, only where it is
        r = _balance(srv.url, key)
        assert r.status_code == 200, r.text
        org_id = r.json()["org_id"]
        assert _balance(srv.url, "vk_" + "x" * 43).status_code == 401
    mtime = key_file.stat().st_mtime_ns

    with Served(data_dir, tmp_path / "second.log") as srv:
        out = srv.output
        assert "First start" not in out and "bootstrap_api_key" not in out, out
        assert key_file.read_text().strip() == key and key_file.stat().st_mtime_ns == mtime
        r = _balance(srv.url, key)
        assert r.status_code == 200 and r.json()["org_id"] == org_id
        keys = httpx.get(srv.url + "/v1/api_keys", headers={"Authorization": f"Bearer {key}"}).json()["data"]
        assert len(keys) == 1  # no second key was created


def test_serve_first_start_with_bootstrap_key_env(tmp_path):
    wanted = "vk_ci_" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    data_dir = tmp_path / "data"
    with Served(data_dir, tmp_path / "serve.log", TUNEYARD_BOOTSTRAP_KEY=wanted) as srv:
        r = _balance(srv.url, wanted)
        assert r.status_code == 200, r.text
        key_file = data_dir / "bootstrap_api_key"
        assert key_file.read_text().strip() == wanted
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        me = httpx.get(srv.url + "/v1/me", headers={"Authorization": f"Bearer {wanted}"}).json()
        keys = httpx.get(srv.url + "/v1/api_keys", headers={"Authorization": f"Bearer {wanted}"}).json()["data"]
        assert [k["id"] for k in keys] == [me["api_key_id"]]
        assert keys[0]["key_prefix"] == wanted[: len(keys[0]["key_prefix"])]
