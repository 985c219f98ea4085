"""Platform overhead of a training job: the same SFT workload as a plain TRL script and as a
tuneyard job, in one run, on this machine.

    python bench/training.py [--steps 30]

Both runs train SmolLM2-135M-Instruct (the bundled model) with the same LoRA SFT settings on
the same 64 chat rows. Throughput is trained tokens (TRL's ``num_tokens``) over the time from
the start of training to the last logged step, measured the same way for both. For the job, the
time from ``POST /v1/training_jobs`` to its first training step is reported too.
Results go to stdout (a markdown table) and ``bench/results/training.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROWS = [{"messages": [
    {"role": "user", "content": f"Write one sentence about the number {i}."},
    {"role": "assistant", "content": f"The number {i} comes after {i - 1} and before {i + 1}, "
                                     f"and its square is {i * i}."}]} for i in range(64)]
HP = {"max_steps": 30, "batch_size": 4, "learning_rate": 2e-4, "lora_r": 8, "lora_alpha": 16,
      "max_length": 128, "seed": 0}


def plain_trl(steps: int) -> dict:
    """The baseline: TRL's SFTTrainer + PEFT LoRA, written directly, with the runner's defaults."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tuneyard.modelhub import resolve_model
    from tuneyard.training.runner import cpu_has_native_bf16

    path = resolve_model(MODEL).path
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    marks: dict = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            marks["begin"] = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs and "train_runtime" not in logs:
                marks["end"], marks["tokens"] = time.monotonic(), logs["num_tokens"]

    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, per_device_train_batch_size=HP["batch_size"],
                         learning_rate=HP["learning_rate"],
                         max_steps=steps, max_length=HP["max_length"], packing=False, logging_steps=1,
                         save_strategy="no", report_to="none", disable_tqdm=True, seed=HP["seed"], use_cpu=True,
                         gradient_checkpointing=False, dataloader_num_workers=0, lr_scheduler_type="linear",
                         bf16=cpu_has_native_bf16())  # what the runner picks on this CPU (TRL would default to True)
        lora = LoraConfig(r=HP["lora_r"], lora_alpha=HP["lora_alpha"], lora_dropout=0.05,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(ROWS), processing_class=tok,
                             peft_config=lora, callbacks=[Clock()])
        trainer.train()
        trainer.save_model(out)
    seconds = marks["end"] - marks["begin"]
    return {"tokens": marks["tokens"], "seconds": seconds, "tokens_per_second": marks["tokens"] / seconds}


def tuneyard_job(steps: int) -> dict:
    """The same workload submitted to a live tuneyard server (embedded scheduler, local executor)."""
    import threading

    import httpx
    import uvicorn

    from tuneyard.api.app import create_app
    from tuneyard.context import Context
    from tuneyard.server import prepare
    from tuneyard.settings import Settings

    key = "vk_bench_0123456789abcdefghij"
    with tempfile.TemporaryDirectory() as data_dir:
        ctx = Context.from_settings(Settings(data_dir=Path(data_dir), bootstrap_key=key))
        prepare(ctx)
        server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=0, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                          timeout=60) as c:
            data = "\n".join(json.dumps(r) for r in ROWS).encode()
            ds = c.post("/v1/datasets", files={"file": ("bench.jsonl", io.BytesIO(data))}).json()["id"]
            posted = time.time()
            job = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": ds, "method": "sft",
                                                    "hyperparameters": {**HP, "max_steps": steps}}).json()
            while job["status"] not in ("completed", "failed", "cancelled"):
                time.sleep(0.5)
                job = c.get(f"/v1/training_jobs/{job['id']}").json()
            assert job["status"] == "completed", job
            events = c.get(f"/v1/training_jobs/{job['id']}/events", params={"limit": 100}).json()["data"]
            while len(events) % 100 == 0 and events:
                more = c.get(f"/v1/training_jobs/{job['id']}/events",
                             params={"limit": 100, "after": events[-1]["id"]}).json()["data"]
                if not more:
                    break
                events += more
        server.should_exit = True
    stamp = lambda e: datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")).timestamp()  # noqa: E731
    running = next(e for e in events if e["type"] == "job.running")
    steps_ev = [e for e in events if e["type"] == "metrics" and "num_tokens" in (e["data"] or {})]
    seconds = stamp(steps_ev[-1]) - stamp(running)
    tokens = steps_ev[-1]["data"]["num_tokens"]
    return {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "post_to_first_step_seconds": stamp(steps_ev[0]) - posted,
            "post_to_completed_seconds": stamp(next(e for e in events if e["type"] == "job.completed")) - posted}


def _mean(runs: list[dict]) -> dict:
    out = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
    out["tokens_per_second"] = sum(r["tokens"] for r in runs) / sum(r["seconds"] for r in runs)
    out["runs"] = len(runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1, help="ABBA rounds (each runs both sides twice)")
    parser.add_argument("--only", choices=["plain", "tuneyard"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:  # one side, in its own process, so neither inherits the other's threads or memory
        print(json.dumps(plain_trl(args.steps) if args.only == "plain" else tuneyard_job(args.steps)))
        return
    # ABBA order: plain, tuneyard, tuneyard, plain (per round), so drift in background load on a
    # shared machine affects both sides alike; each side's figure is the mean over its runs.
    runs: dict[str, list[dict]] = {"plain": [], "tuneyard": []}
    for _ in range(args.rounds):
        for side in ("plain", "tuneyard", "tuneyard", "plain"):
            done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--only", side],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"the {side} run failed:\n{done.stderr[-4000:]}")
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = {side: _mean(r) for side, r in runs.items()}
    ratio = results["tuneyard"]["tokens_per_second"] / results["plain"]["tokens_per_second"]
    report = {"workload": {"model": MODEL, "rows": len(ROWS), **HP, "max_steps": args.steps},
              "plain_trl": results["plain"], "tuneyard": results["tuneyard"], "throughput_ratio": ratio, "runs": runs,
              "machine": {"cpus": os.cpu_count()}}
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    Path(__file__).with_name("results").joinpath("training.json").write_text(json.dumps(report, indent=2))
    p, t = results["plain"], results["tuneyard"]
    print("| run | trained tokens | seconds | tokens/s |\n|---|---|---|---|")
    print(f"| plain TRL script | {p['tokens']:.0f} | {p['seconds']:.1f} | {p['tokens_per_second']:.1f} |")
    print(f"| tuneyard job | {t['tokens']:.0f} | {t['seconds']:.1f} | {t['tokens_per_second']:.1f} |")
    print(f"\nthroughput ratio (tuneyard / plain): {ratio:.3f}  (target >= 0.95)")
    print(f"POST -> first training step: {t['post_to_first_step_seconds']:.1f} s  (target <= 15 s)")
    print(f"POST -> completed: {t['post_to_completed_seconds']:.1f} s")


if __name__ == "__main__":
    main()
