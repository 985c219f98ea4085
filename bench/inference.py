"""Inference throughput and latency on this machine, in one run: the sequential baseline and a
tuneyard deployment under concurrent streaming clients, plus the gateway's own overhead.

    python bench/inference.py [--tokens 32] [--threads 2] [--levels 1,4,16]

1. Baseline: the bundled SmolLM2-135M-Instruct loaded with transformers in this process, one
   ``generate`` call after another (greedy, exactly ``--tokens`` new tokens each); run before and
   after the deployment measurements, and averaged (the machine is shared; its load drifts).
2. A real ``tuneyard serve`` (SQLite, its own data dir) with a deployment of the same model; the
   worker gets the same torch thread count. For each concurrency level, that many clients stream
   requests (fixed prompts, ``max_tokens=--tokens`` with ``ignore_eos``, greedy) through the
   deployment endpoint. Reported: aggregate tokens/s, p50/p95 time to first token and per-token
   latency (the gaps between streamed tokens).
3. Gateway overhead: the same small request sent alternately to the deployment endpoint and
   straight to its worker; the difference of the p50 latencies. Measured twice: on a request the
   worker rejects at once (pure HTTP path: auth, routing, proxying, logging) and on a 1-token
   completion.

Results go to stdout (markdown) and ``bench/results/inference.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
KEY = "vk_bench_bootstrap_key_0123456789abcdef"
PROMPTS = [f"Write a short poem about the number {i}." for i in range(16)]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


class Baseline:
    """Sequential HF generate in this process, timing each token with a streamer. Measured before and
    after the deployment runs (the machine is shared: load drifts), and the two are averaged."""

    def __init__(self, threads: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from tuneyard.modelhub import resolve_model

        torch.set_num_threads(threads)
        path = resolve_model(MODEL).path
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.inputs = [self.tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                    return_tensors="pt", return_dict=True) for p in PROMPTS]

    def run(self, tokens: int, runs: int) -> dict:
        import torch
        from transformers.generation.streamers import BaseStreamer

        class Clock(BaseStreamer):
            def __init__(self):
                self.times: list[float] = []
                self.prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:  # the first put() is the prompt
                    self.prompt_seen = True
                    return
                self.times.append(time.perf_counter())

            def end(self):
                pass

        ttfts, gaps, produced = [], [], 0
        with torch.inference_mode():
            self.model.generate(**self.inputs[0], max_new_tokens=4, do_sample=False)  # warm-up
            started = time.perf_counter()
            for i in range(runs):
                clock, x = Clock(), self.inputs[i % len(self.inputs)]
                t0 = time.perf_counter()
                out = self.model.generate(**x, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                          streamer=clock)
                produced += out.shape[1] - x["input_ids"].shape[1]
                ttfts.append((clock.times[0] - t0) * 1000)
                gaps += [(b - a) * 1000 for a, b in zip(clock.times, clock.times[1:])]
            wall = time.perf_counter() - started
        return {"requests": runs, "tokens": produced, "seconds": round(wall, 2),
                "tokens_per_s": round(produced / wall, 2), "ttft_ms_p50": pct(ttfts, 0.5),
                "ttft_ms_p95": pct(ttfts, 0.95), "tpot_ms_p50": pct(gaps, 0.5), "tpot_ms_p95": pct(gaps, 0.95)}


def combine(before: dict, after: dict) -> dict:
    out = {k: round((before[k] + after[k]) / 2, 2) for k in before if isinstance(before[k], float)}
    out.update(requests=before["requests"] + after["requests"], tokens=before["tokens"] + after["tokens"],
               tokens_per_s_before=before["tokens_per_s"], tokens_per_s_after=after["tokens_per_s"])
    return out


class Server:
    def __init__(self, threads: int, max_batch: int):
        self.dir = Path(tempfile.mkdtemp(prefix="tuneyard-bench-"))
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TUNEYARD_DATA_DIR": str(self.dir), "TUNEYARD_BOOTSTRAP_KEY": KEY,
               "TUNEYARD_INFERENCE_THREADS": str(threads), "TUNEYARD_INFERENCE_MAX_BATCH_SIZE": str(max_batch),
               "TUNEYARD_INITIAL_CREDIT_USD": "100000"}
        self.log = open(self.dir / "serve.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tuneyard", "serve", "--port", str(self.port),
                                      "--log-level", "warning"], env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, client, timeout=120):
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("tuneyard serve did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


async def stream_one(client, url: str, prompt: str, tokens: int) -> dict:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": tokens, "stream": True,
            "ignore_eos": True, "temperature": 0}
    t0 = time.perf_counter()
    times = []
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"content"' in line:
                times.append(time.perf_counter())
    return {"ttft": (times[0] - t0) * 1000, "gaps": [(b - a) * 1000 for a, b in zip(times, times[1:])],
            "chunks": len(times)}


async def load_level(url: str, concurrency: int, requests_each: int, tokens: int) -> dict:
    import httpx

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=600,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def user(u: int) -> list[dict]:
            return [await stream_one(client, url, PROMPTS[(u + k) % len(PROMPTS)], tokens)
                    for k in range(requests_each)]

        started = time.perf_counter()
        per_user = await asyncio.gather(*[user(u) for u in range(concurrency)])
        wall = time.perf_counter() - started
    results = [r for rs in per_user for r in rs]
    ttfts = [r["ttft"] for r in results]
    gaps = [g for r in results for g in r["gaps"]]
    return {"concurrency": concurrency, "requests": len(results), "tokens": tokens * len(results),
            "seconds": round(wall, 2), "tokens_per_s": round(tokens * len(results) / wall, 2),
            "ttft_ms_p50": pct(ttfts, 0.5), "ttft_ms_p95": pct(ttfts, 0.95),
            "tpot_ms_p50": pct(gaps, 0.5), "tpot_ms_p95": pct(gaps, 0.95)}


def gateway_overhead(client, endpoint: str, worker: str, samples: int) -> dict:
    """p50 latency via the gateway minus p50 straight to the worker, same request, interleaved."""
    import httpx

    direct = httpx.Client(timeout=60)
    out = {}
    cases = {"rejected_400": {"messages": [{"role": "user", "content": "hi"}], "temperature": 5},
             "one_token_200": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "temperature": 0}}
    for name, body in cases.items():
        via, straight = [], []
        for _ in range(samples):
            for target, sink, http in ((endpoint, via, client), (worker + "/v1/chat/completions", straight, direct)):
                t0 = time.perf_counter()
                r = http.post(target, json=body)
                sink.append((time.perf_counter() - t0) * 1000)
                assert r.status_code in (200, 400), r.text
        out[name] = {"gateway_p50_ms": pct(via, 0.5), "direct_p50_ms": pct(straight, 0.5),
                     "overhead_p50_ms": round(statistics.median(via) - statistics.median(straight), 2)}
    direct.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, baseline and worker alike")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=2, help="requests per client at each level")
    parser.add_argument("--baseline-runs", type=int, default=6)
    parser.add_argument("--overhead-samples", type=int, default=60)
    args = parser.parse_args()
    import httpx

    levels = [int(x) for x in args.levels.split(",")]
    print(f"baseline: sequential generate, {args.baseline_runs} x {args.tokens} tokens ...", flush=True)
    reference = Baseline(args.threads)
    before = reference.run(args.tokens, args.baseline_runs)
    print(json.dumps(before), flush=True)
    server = Server(args.threads, max(levels))
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
            server.wait(c)
            dep = c.post("/v1/deployments", json={"model": MODEL, "name": "bench",
                                                  "gpu": {"type": "cpu", "count": 1}}).json()
            t0 = time.time()
            while (dep := c.get(f"/v1/deployments/{dep['id']}").json())["status"] not in ("serving", "failed"):
                time.sleep(0.5)
            assert dep["status"] == "serving", dep
            startup = round(time.time() - t0, 1)
            print(f"deployment serving after {startup} s", flush=True)
            endpoint = dep["endpoint_url"]
            asyncio.run(load_level(endpoint, 1, 1, 4))  # warm-up
            rows = []
            for level in levels:
                row = asyncio.run(load_level(endpoint, level, args.rounds, args.tokens))
                rows.append(row)
                print(json.dumps(row), flush=True)
            metrics = c.get(f"/v1/deployments/{dep['id']}/metrics").json()
            worker_url = _worker_url(server.dir, dep["id"])
            overhead = gateway_overhead(c, endpoint, worker_url, args.overhead_samples)
            print(json.dumps(overhead), flush=True)
            c.post(f"/v1/deployments/{dep['id']}/stop")
            time.sleep(2)
    finally:
        server.stop()
    after = reference.run(args.tokens, args.baseline_runs)
    print(json.dumps(after), flush=True)
    base = combine(before, after)
    for row in rows:
        row["speedup_vs_baseline"] = round(row["tokens_per_s"] / base["tokens_per_s"], 2)
    result = {"date": datetime.now().isoformat(timespec="seconds"), "model": MODEL, "tokens": args.tokens,
              "threads": args.threads, "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
              "baseline": base, "deployment_startup_s": startup, "levels": rows, "gateway_overhead": overhead,
              "engine": metrics.get("engine")}
    out = Path(__file__).parent / "results" / "inference.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


def _worker_url(data_dir: Path, dep_id: str) -> str:
    state = json.loads((data_dir / "deployments" / dep_id / "worker.json").read_text())
    return f"http://{state['host']}:{state['port']}"


def markdown(r: dict) -> str:
    b = r["baseline"]
    lines = ["| setup | clients | tokens/s | × baseline | TTFT p50 / p95 (ms) | per-token p50 / p95 (ms) |",
             "|---|---|---|---|---|---|",
             f"| HF `generate`, sequential (mean of {b['tokens_per_s_before']} before, {b['tokens_per_s_after']} "
             f"after) | 1 | {b['tokens_per_s']} | 1.0 | {b['ttft_ms_p50']} / {b['ttft_ms_p95']} "
             f"| {b['tpot_ms_p50']} / {b['tpot_ms_p95']} |"]
    for row in r["levels"]:
        lines.append(f"| deployment (streaming via gateway) | {row['concurrency']} | {row['tokens_per_s']} | "
                     f"{row['speedup_vs_baseline']} | {row['ttft_ms_p50']} / {row['ttft_ms_p95']} | "
                     f"{row['tpot_ms_p50']} / {row['tpot_ms_p95']} |")
    lines.append("")
    lines.append("| gateway overhead | via gateway p50 (ms) | worker direct p50 (ms) | overhead p50 (ms) |")
    lines.append("|---|---|---|---|")
    for name, o in r["gateway_overhead"].items():
        lines.append(f"| {name} | {o['gateway_p50_ms']} | {o['direct_p50_ms']} | {o['overhead_p50_ms']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
