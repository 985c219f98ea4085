"""``tuneyard quickstart`` as a new user runs it: no config, an embedded server, a small step count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_quickstart_from_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TUNEYARD_URL", "TUNEYARD_API_KEY")}
    env.update({"TUNEYARD_CONFIG": str(tmp_path / "no-config.json"), "TUNEYARD_DATA_DIR": str(tmp_path / "data"),
                "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    env.pop("TUNEYARD_BOOTSTRAP_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "tuneyard", "quickstart", "--steps", "2", "--json"], env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    report = json.loads(proc.stdout)
    progress = proc.stderr

    assert report["embedded"] and Path(report["data_dir"]) == tmp_path / "data"
    assert (tmp_path / "data" / "tuneyard.db").exists() and (tmp_path / "data" / "bootstrap_api_key").exists()
    assert not (tmp_path / "no-config.json").exists(), "the quickstart does not log the user in to a dead server"

    sft, grpo = report["jobs"]["sft"], report["jobs"]["grpo"]
    assert sft["status"] == "completed" and sft["method"] == "sft" and sft["current_step"] == 2
    assert grpo["status"] == "completed" and grpo["method"] == "grpo" and grpo["reward_function_id"]
    # Loss and reward were reported step by step, and shown as they came.
    assert report["curves"]["sft"]["loss"]["points"] == 2
    assert report["curves"]["grpo"]["reward"]["points"] == 2
    assert "step 1/2  loss" in progress and "step 2/2  loss" in progress and "reward" in progress

    if report["deployment_skipped"] is None:
        assert report["deployment"]["status"] == "stopped"
        assert report["answer"] and report["answer"].strip()
        assert "model> " in progress
    else:
        assert "Skipping deploy and chat" in progress

    # What each step cost, from the ledger, and the balance moved by about that much.
    costs = {c["step"]: c for c in report["costs"]}
    assert costs["SFT training"]["id"] == sft["id"] and costs["SFT training"]["cost_usd"] > 0
    assert costs["GRPO training"]["cost_usd"] > 0
    assert report["balance_after_usd"] < report["balance_before_usd"]
    assert "Where everything is" in progress and str(tmp_path / "data") in progress
