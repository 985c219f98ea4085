"""Serving: engines, the deployment worker process, its supervisor, and the gateway.

* ``engine``      the interface every engine implements, and how outputs reach asyncio
* ``hf_engine``   transformers engine: dynamic batching, KV cache (``batching``), sampling
                  (``sampling``), LoRA adapters, grammar constraints (``constraints``)
* ``vllm_engine`` vLLM on GPU hosts
* ``chat_schema`` / ``chat``  the OpenAI Chat Completions request, prompts, tool calls, responses
* ``worker``      ``python -m tuneyard.inference.worker``: one deployment's HTTP server
* ``launcher`` / ``supervisor``  start, probe, restart and stop workers (runs in serve / worker)
* ``gateway``     the API side: forward a request to its worker, log it

See docs/deployments.md.
"""
