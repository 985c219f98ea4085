"""The vLLM engine, for GPU hosts that have vLLM installed (``pip install tuneyard[vllm]``).

vLLM brings its own continuous batching, paged KV cache and multi-LoRA serving; this class only
maps our engine interface onto ``AsyncLLMEngine``: token prompts in, text deltas out, LoRA
adapters as ``LoRARequest``s, JSON mode through vLLM's structured outputs when the installed
version offers them. It has not run on the CPU machines tuneyard is developed on (vLLM needs a
GPU); the transformers engine serves everywhere else, with the same HTTP surface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tuneyard.inference.engine import EngineStats, GenerationRequest, Output


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_path: str, *, adapters: dict[str, str] | None = None, max_batch_size: int = 64,
                 max_model_len: int = 4096):
        self.model_path, self.max_model_len = model_path, max_model_len
        self.max_batch_size = max_batch_size
        self._adapters: dict[str, Any] = {}
        self._initial = dict(adapters or {})
        self._stats = EngineStats()
        self._active: set[str] = set()
        self.tokenizer: Any = None
        self.engine: Any = None

    def start(self) -> None:
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        args = AsyncEngineArgs(model=self.model_path, enable_lora=True, max_loras=8, max_lora_rank=64,
                               max_num_seqs=self.max_batch_size, max_model_len=self.max_model_len)
        self.engine = AsyncLLMEngine.from_engine_args(args)
        for name, path in self._initial.items():
            self.load_adapter(name, path)

    def stop(self) -> None:
        if self.engine is not None and hasattr(self.engine, "shutdown"):
            self.engine.shutdown()

    def error(self) -> str | None:
        errored = getattr(self.engine, "errored", False)
        return "the vLLM engine loop has died" if errored else None

    def load_adapter(self, name: str, path: str) -> None:
        from vllm.lora.request import LoRARequest

        if name in self._adapters:
            raise ValueError(f"an adapter named {name!r} is already loaded")
        self._adapters[name] = LoRARequest(name, len(self._adapters) + 1, path)

    def adapters(self) -> list[str]:
        return list(self._adapters)

    def stats(self) -> dict[str, Any]:
        self._stats.active = len(self._active)
        return {**self._stats.as_json(), "adapters": self.adapters(), "max_batch_size_limit": self.max_batch_size}

    def abort(self, request_id: str) -> None:
        import asyncio

        asyncio.ensure_future(self.engine.abort(request_id))

    def _sampling(self, req: GenerationRequest):
        from vllm import SamplingParams

        p = req.params
        kwargs: dict[str, Any] = dict(
            n=req.n, max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed, stop=p.stop,
            presence_penalty=p.presence_penalty, frequency_penalty=p.frequency_penalty,
            logit_bias=p.logit_bias or None, ignore_eos=p.ignore_eos)
        if req.constraint is not None:
            kwargs.update(_json_constraint())
        return SamplingParams(**kwargs)

    async def generate(self, req: GenerationRequest) -> AsyncIterator[Output]:
        lora = self._adapters.get(req.adapter) if req.adapter else None
        sent = [0] * req.n
        done = [False] * req.n
        self._stats.requests += 1
        self._stats.prompt_tokens += len(req.prompt_ids)
        self._active.add(req.request_id)
        finished = False
        try:
            async for result in self.engine.generate({"prompt_token_ids": req.prompt_ids}, self._sampling(req),
                                                     req.request_id, lora_request=lora):
                for out in result.outputs:
                    i = out.index
                    if done[i]:
                        continue
                    delta = out.text[sent[i]:]
                    sent[i] = len(out.text)
                    if out.finish_reason is not None:
                        done[i] = True
                        self._stats.tokens_generated += len(out.token_ids)
                    yield Output(i, delta, len(out.token_ids), out.finish_reason is not None,
                                 "length" if out.finish_reason == "length" else out.finish_reason and "stop")
            finished = True
        finally:
            self._active.discard(req.request_id)
            if not finished:
                self._stats.aborted += 1
                await self.engine.abort(req.request_id)


def _json_constraint() -> dict[str, Any]:
    """vLLM's structured outputs for a JSON object, under whichever name this vLLM version uses."""
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json_object=True)}
    except ImportError:
        pass
    try:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json_object=True)}
    except ImportError:
        return {}
