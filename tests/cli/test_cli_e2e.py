"""The ``tuneyard`` CLI end to end against a real server that really trains and serves.

login → upload → train (a few steps) → follow the logs → events, download → deploy → chat (one-shot
and interactive) → stop → billing; plus how user errors look (one line on stderr, an exit code).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneyard.cli.main import app

SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(8)]


@pytest.fixture(scope="module")
def cli(sqlite_server, tmp_path_factory):
    """Run ``tuneyard ARGS`` in-process with its own config file; returns the click Result."""
    home = tmp_path_factory.mktemp("cli-home")
    env = {"TUNEYARD_CONFIG": str(home / "config.json"), "TUNEYARD_URL": None, "TUNEYARD_API_KEY": None,
           "COLUMNS": "200"}
    runner = CliRunner()

    def run(*args: str, input: str | None = None, extra_env: dict | None = None):
        return runner.invoke(app, list(args), env={**env, **(extra_env or {})}, input=input)

    run.config_path = home / "config.json"
    run.url = sqlite_server.url
    run.key = sqlite_server.key
    return run


@pytest.fixture
def logged_in(cli):
    """The saved login the other commands use (what `test_login_saves_a_private_config` checks)."""
    ok(cli("login", "--url", cli.url, "--api-key", cli.key))
    return cli


def ok(result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def as_json(result):
    return json.loads(ok(result))


def assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_login_saves_a_private_config(cli):
    assert_one_line_error(cli("login", "--url", cli.url, "--api-key", "vk_wrong_key_for_this_server"), 4,
                          "rejected this key")
    assert not cli.config_path.exists()
    out = ok(cli("login", "--url", cli.url + "/v1", "--api-key", cli.key))
    assert "Logged in to" in out
    assert stat.S_IMODE(cli.config_path.stat().st_mode) == 0o600
    assert json.loads(cli.config_path.read_text()) == {"url": cli.url, "api_key": cli.key}
    me = as_json(cli("whoami", "--json"))
    assert me["url"] == cli.url and me["org_id"].startswith("org_") and me["balance_usd"] > 0


def test_user_errors_are_one_line_with_an_exit_code(logged_in, tmp_path):
    cli = logged_in
    assert_one_line_error(cli("datasets", "get", "ds_nothing_here"), 1, "No dataset 'ds_nothing_here'")
    assert_one_line_error(cli("datasets", "upload", str(tmp_path / "missing.jsonl")), 1, "no such file")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\nnot json\n')
    assert_one_line_error(cli("datasets", "upload", str(bad)), 1, "line 2")
    assert_one_line_error(cli("jobs", "create", "--dataset", "ds_nothing_here", "--hp", "max_steps=1"), 1,
                          "ds_nothing_here")
    assert_one_line_error(cli("--url", "http://127.0.0.1:9", "billing", "balance"), 3, "cannot reach tuneyard")
    assert_one_line_error(cli("billing", "balance", extra_env={"TUNEYARD_API_KEY": "vk_revoked_or_wrong"}), 4,
                          "tuneyard login")


def test_upload_train_follow_download_deploy_chat(logged_in, tmp_path):
    cli = logged_in
    data = tmp_path / "arith.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in SFT_ROWS) + "\n")
    ds = as_json(cli("datasets", "upload", str(data), "--name", "arith", "--json"))
    assert ds["name"] == "arith" and ds["num_rows"] == 8 and ds["format"] == "chat"
    listing = ok(cli("datasets", "list"))
    assert ds["id"] in listing and "arith" in listing

    job = as_json(cli("jobs", "create", "--dataset", ds["id"], "--method", "sft", "--steps", "2",
                      "--hp", "batch_size=2", "--hp", "max_length=48", "--hp", "lora_r=4",
                      "--output-name", "cli-e2e", "--json"))
    assert job["status"] == "queued" and job["hyperparameters"]["max_steps"] == 2

    # Follow it live: runner log lines, then one line per step with its loss, then the outcome.
    followed = ok(cli("jobs", "logs", "-f", job["id"]))
    assert "[log]" in followed and "SFT trainer ready" in followed
    assert "step 1/2  loss" in followed and "step 2/2  loss" in followed
    assert f"✓ {job['id']} completed" in followed

    done = as_json(cli("jobs", "get", job["id"], "--json"))
    assert done["status"] == "completed" and done["current_step"] == 2
    events = ok(cli("jobs", "events", job["id"]))
    assert "job.running" in events and "metrics" in events and "job.completed" in events
    streamed = [json.loads(line) for line in ok(cli("jobs", "events", "-f", job["id"], "--json")).splitlines()]
    assert streamed[-1]["type"] in ("job.completed", "billing.settled")
    full_log = ok(cli("jobs", "logs", job["id"]))
    assert "[tuneyard] Job completed" in full_log

    saved = as_json(cli("jobs", "download", job["id"], "-o", str(tmp_path / "models"), "--json"))
    folder = Path(saved["path"])
    assert (folder / "adapter_model.safetensors").stat().st_size > 0 and (folder / "adapter_config.json").exists()

    dep = as_json(cli("deploy", job["id"], "--name", "cli-e2e-dep", "--json"))
    assert dep["status"] == "serving", dep
    listed = ok(cli("deployments", "list"))
    assert dep["id"] in listed and "serving" in listed

    answer = ok(cli("deployments", "chat", dep["id"], "What is 3 plus 3?", "--max-tokens", "12"))
    assert answer.strip(), "the model answered something"
    completion = as_json(cli("deployments", "chat", dep["id"], "Hello", "--max-tokens", "8", "--json"))
    assert completion["object"] == "chat.completion" and completion["choices"][0]["message"]["content"]

    session = ok(cli("deployments", "chat", dep["id"], "--max-tokens", "8",
                     input="What is 2 plus 2?\n/reset\nAnd 5 plus 5?\n/exit\n"))
    assert session.count("model>") == 2
    requests = as_json(cli("deployments", "requests", dep["id"], "--json"))
    # The request log is written in the background: some of the four chats may not be listed yet.
    assert requests["data"] and all(r["status_code"] == 200 for r in requests["data"])

    stopped = as_json(cli("deployments", "stop", dep["id"], "--json"))
    assert stopped["status"] == "stopped"
    assert_one_line_error(cli("deployments", "chat", dep["id"], "still there?"), 1, "stopped")

    txns = as_json(cli("billing", "transactions", "--limit", "100", "--json"))["data"]
    assert any(t["reference"] == job["id"] and t["amount_usd"] < 0 for t in txns)
    assert ok(cli("cost", "summary"))
    assert "cli-e2e" in ok(cli("models"))


def test_rewards_keys_cost_and_billing_commands(logged_in, sqlite_server, tmp_path):
    cli = logged_in
    reward = tmp_path / "brevity.py"
    reward.write_text("def reward(prompts, completions, **kwargs):\n"
                      "    return [1.0 / (1 + len(c)) for c in completions]\n")
    rf = as_json(cli("rewards", "upload", str(reward), "--json"))
    assert rf["name"] == "brevity" and rf["format"] == "trl"
    assert rf["id"] in ok(cli("rewards", "list"))
    assert "def reward" in ok(cli("rewards", "get", rf["id"], "--source"))
    not_python = tmp_path / "oops.py"
    not_python.write_text("this is not python(\n")
    result = cli("rewards", "upload", str(not_python))
    assert result.exit_code == 1 and result.stderr.startswith("error:") and "Traceback" not in result.stderr

    # keys: through the API when logged in ...
    made = as_json(cli("keys", "create", "--name", "ci", "--json"))
    assert made["key"].startswith("vk_")
    assert made["id"] in ok(cli("keys", "list"))
    assert as_json(cli("whoami", "--json", extra_env={"TUNEYARD_API_KEY": made["key"]}))["api_key_id"] == made["id"]
    assert as_json(cli("keys", "revoke", made["id"], "--json"))["revoked"] is True
    assert cli("whoami", extra_env={"TUNEYARD_API_KEY": made["key"]}).exit_code == 4
    # ... and on the database as admin with --org (a separate process, reading the server's settings).
    env = {**os.environ, "TUNEYARD_DATA_DIR": str(sqlite_server.ctx.settings.data_dir), "TUNEYARD_DATABASE_URL": ""}
    admin = subprocess.run([sys.executable, "-m", "tuneyard", "keys", "create", "--org", "default", "--name",
                            "admin-made", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert admin.returncode == 0, admin.stderr
    admin_key = json.loads(admin.stdout)["key"]
    assert as_json(cli("billing", "balance", "--json", extra_env={"TUNEYARD_API_KEY": admin_key}))["org_id"]

    estimate = as_json(cli("cost", "estimate", "--gpu-type", "A100-80GB", "--hours", "2", "--json"))
    assert estimate["gpu_type"] == "A100-80GB" and estimate["duration_minutes"] == 120 and estimate["cost_usd"] > 0
    assert "A100-80GB" in ok(cli("cost", "compare", "--gpu-type", "A100-80GB"))
    assert "A100-80GB" in ok(cli("cost", "rates"))
    balance = as_json(cli("billing", "balance", "--json"))
    assert ok(cli("billing", "balance")).startswith(f"balance ${balance['balance_usd']:,.2f}")
    assert "grant" in ok(cli("billing", "transactions"))
