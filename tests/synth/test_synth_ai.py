"""``synth-ai==0.2.6`` (from its own venv, tests/synth/synth_env.py) against a live tuneyard.

``SYNTH_BASE_URL`` is the server's ``/api`` (as Synth's own docs set it), so the SDK reaches
``/api/v1/chat/completions``, ``/api/v1/responses`` and the warmup aliases ``/api/warmup/...``
with the model id unescaped in the path. Offline notes (reference/sdk-contracts.md B.4):
``openai_harmony`` is blocked before import (it downloads a vocab file), ``USE_ZYK_CACHE=false``.
One script runs all the SDK calls, so its heavy imports are paid once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_env  # this folder is not a package

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SERVER_SETTINGS = {"inference_max_model_len": 512, "inference_default_max_tokens": 16, "inference_threads": 1}

SCRIPT = r'''
import asyncio, json, sys
sys.modules["openai_harmony"] = None  # it would download a vocab file at import (no network here)
from synth_ai.lm import LM, warmup_synth_model
from synth_ai.lm.vendors.synth_client import AsyncSynthClient

MODEL = sys.argv[1]

async def main():
    out = {}
    # Cold: POST /api/warmup/<model> answers "warming", then the helper polls the status until "warmed".
    out["warmup"] = await warmup_synth_model(MODEL, gpu_preference="A100", max_attempts=300, verbose=False)
    out["warmup_again"] = await warmup_synth_model(MODEL, force=True, max_attempts=5, verbose=False)
    out["warmup_unknown"] = await warmup_synth_model("nobody/nothing-7B", max_attempts=3, verbose=False)
    lm = LM(vendor="synth", model=MODEL, temperature=0, gpu_preference="L40S", max_tokens=12)
    r = await lm.respond_async(system_message="You are a terse assistant.", user_message="What is 2 plus 2?")
    out["lm"] = r.raw_response
    async with AsyncSynthClient() as client:
        chunks = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Count to three."}], max_tokens=10, stream=True)
        out["stream"] = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        plain = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, temperature=0)
        out["chat"] = {"content": plain.choices[0].message.content, "model": plain.model,
                       "finish_reason": plain.choices[0].finish_reason}
        out["responses"] = await client.responses_create(
            model=MODEL, messages=[{"role": "user", "content": "Say yes."}], max_output_tokens=6)
    print("RESULT " + json.dumps(out))

asyncio.run(main())
'''


@pytest.fixture(scope="module")
def synth_ai():
    info = synth_env.install()
    state = "reused" if info["reused"] else f"installed in {info['install_seconds']} s"
    print(f"\n[synth-ai venv] {state}")
    return synth_env.bin_path("python")


@pytest.fixture
def env(tmp_path, sqlite_server):
    home = tmp_path / "home"
    home.mkdir()
    return {**synth_env.base_env(home), "SYNTH_BASE_URL": sqlite_server.url + "/api",
            "SYNTH_API_KEY": sqlite_server.key}


def test_lm_chat_warmup_and_responses(synth_ai, env, tmp_path, sqlite_server):
    script = tmp_path / "drive.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([str(synth_ai), str(script), MODEL], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900, stdin=subprocess.DEVNULL, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["warmup"] is True and out["warmup_again"] is True and out["warmup_unknown"] is False
    assert isinstance(out["lm"], str) and out["lm"].strip()
    assert out["stream"].strip()
    assert out["chat"]["content"].strip() and out["chat"]["model"] == MODEL
    assert out["responses"]["object"] == "response" and out["responses"]["output_text"].strip()
    # All of it went to one on-demand deployment of the model, through the gateway.
    with sqlite_server.client() as c:
        deps = [d for d in c.get("/v1/deployments").json()["data"] if d["name"] == MODEL]
        assert len(deps) == 1 and deps[0]["status"] == "serving"
        requests = c.get(f"/v1/deployments/{deps[0]['id']}/requests", params={"limit": 50}).json()["data"]
        assert len(requests) >= 4 and all(r["status_code"] == 200 for r in requests)
        assert any(r["streamed"] for r in requests)
        status = c.get(f"/api/warmup/status/{MODEL}").json()
        assert status["status"] == "warmed" and status["deployment_id"] == deps[0]["id"]


def run_balance(synth_ai, env, *args) -> subprocess.CompletedProcess:
    cli = synth_ai.parent / "synth-ai"
    return subprocess.run([str(cli), "balance", *args], capture_output=True, text=True, env=env, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)


def test_balance_cli(synth_ai, env, sqlite_server):
    with sqlite_server.client() as c:
        cents = c.get("/api/v1/balance/current").json()["balance_cents"]
    expected = f"Balance: ${cents / 100:,.2f}"
    # Base URL and key from the environment as LM users have them (SYNTH_BASE_URL=…/api: the CLI keeps it
    # and asks /api/balance/*, an alias), then the seed's …/api/v1 with --usage, then a bad key.
    proc = run_balance(synth_ai, env)
    assert proc.returncode == 0 and expected in proc.stdout, proc.stdout + proc.stderr
    assert "24h" in proc.stdout and "7d" in proc.stdout, proc.stdout
    proc = run_balance(synth_ai, env, "--base-url", sqlite_server.url + "/api/v1", "--api-key", sqlite_server.key,
                       "--usage")
    assert proc.returncode == 0 and expected in proc.stdout and "24h" in proc.stdout, proc.stdout + proc.stderr
    proc = run_balance(synth_ai, env, "--base-url", sqlite_server.url + "/api", "--api-key", "vk_not_a_key")
    assert "Unauthorized (401)" in proc.stdout, proc.stdout


def test_usage_route_the_cli_falls_back_to(sqlite_server):
    """``synth-ai balance --usage`` reads /balance/usage when /usage/windows is missing: same shape here."""
    with httpx.Client(base_url=sqlite_server.url, headers={"Authorization": f"Bearer {sqlite_server.key}"}) as c:
        for prefix in ("/api/balance", "/api/v1/balance"):
            usage = c.get(f"{prefix}/usage").json()
            for window in ("current_month", "last_30_days"):
                assert {"token_spend_cents", "gpu_spend_cents", "total_spend_cents", "token_count",
                        "gpu_hours"} <= set(usage[window])
