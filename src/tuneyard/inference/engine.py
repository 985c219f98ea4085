"""The engine interface every deployment worker serves through, and the pieces they share.

An engine turns token prompts into streams of text deltas for many requests at once. The worker
(HTTP, OpenAI schema, prompt rendering, tool-call parsing) is the same for every engine; only
this seam differs: ``hf_engine.TransformersEngine`` (CPU, or GPU without vLLM; batches requests
itself) and ``vllm_engine.VLLMEngine`` (GPU, when vLLM is installed).

Engines run their decode loop off the asyncio thread; results come back to the request's
``asyncio.Queue`` through ``call_soon_threadsafe``. Leaving the ``generate`` iterator early
(a client that went away) aborts the request, which frees its batch slot at the next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tuneyard.inference.sampling import SamplingParams


@dataclass
class GenerationRequest:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    n: int = 1
    adapter: str | None = None
    # Builds a fresh acceptor (constraints.py) per choice; None = free text.
    constraint: Callable[[], Any] | None = None


@dataclass
class Output:
    """One step of one choice: new text, and whether (and why) that choice has finished."""

    index: int
    text: str
    completion_tokens: int
    finished: bool = False
    finish_reason: str | None = None


@dataclass
class EngineStats:
    requests: int = 0
    active: int = 0
    waiting: int = 0
    steps: int = 0
    tokens_generated: int = 0
    prompt_tokens: int = 0
    max_batch_size: int = 0
    aborted: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        mean = self.tokens_generated / self.steps if self.steps else 0.0
        return {"requests": self.requests, "active": self.active, "waiting": self.waiting, "steps": self.steps,
                "tokens_generated": self.tokens_generated, "prompt_tokens": self.prompt_tokens,
                "max_batch_size": self.max_batch_size, "mean_batch_size": round(mean, 2),
                "aborted": self.aborted, **self.extra}


class Engine(Protocol):
    name: str
    tokenizer: Any
    max_model_len: int

    def start(self) -> None:
        """Load the model (blocking) and start the decode loop."""

    def stop(self) -> None: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[Output]:
        """Stream the outputs of ``request``; closing the iterator early aborts it."""

    def abort(self, request_id: str) -> None: ...

    def load_adapter(self, name: str, path: str) -> None:
        """Serve a LoRA adapter of the loaded base under ``name`` (requests pick it by name)."""

    def adapters(self) -> list[str]: ...

    def stats(self) -> dict[str, Any]: ...

    def error(self) -> str | None:
        """Why the engine can no longer serve, or None while it can."""


class RequestChannel:
    """Where an engine thread drops one request's outputs for the asyncio side to pick up."""

    def __init__(self, loop: asyncio.AbstractEventLoop, choices: int):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.open_choices = choices

    def put(self, item: Output | BaseException) -> None:
        self.queue.put_nowait(item)


def deliver(batch: list[tuple[RequestChannel, Output | BaseException]]) -> None:
    """Hand a step's outputs to their event loops: one wake-up per loop per step, not per token."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for channel, item in batch:
        by_loop.setdefault(channel.loop, []).append((channel, item))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the loop is closed: the worker is shutting down
            pass


def _put_all(items) -> None:
    for channel, item in items:
        channel.put(item)


async def stream_outputs(channel: RequestChannel, request_id: str, abort: Callable[[str], None]
                         ) -> AsyncIterator[Output]:
    """Yield a request's outputs until all its choices finish; abort it if the consumer leaves."""
    finished = False
    try:
        while channel.open_choices > 0:
            item = await channel.queue.get()
            if isinstance(item, BaseException):
                raise item
            if item.finished:
                channel.open_choices -= 1
            yield item
        finished = True
    finally:
        if not finished:
            abort(request_id)


def make_engine(kind: str, model_path: str, *, adapters: dict[str, str], device: str, max_batch_size: int,
                max_model_len: int, threads: int = 0) -> Engine:
    """``auto`` picks vLLM on a GPU when it is installed, else transformers."""
    if kind == "auto":
        kind = "vllm" if device.startswith("cuda") and _vllm_available() else "transformers"
    if kind == "vllm":
        from tuneyard.inference.vllm_engine import VLLMEngine

        return VLLMEngine(model_path, adapters=adapters, max_batch_size=max_batch_size, max_model_len=max_model_len)
    if kind == "transformers":
        from tuneyard.inference.hf_engine import TransformersEngine

        return TransformersEngine(model_path, adapters=adapters, device=device, max_batch_size=max_batch_size,
                                  max_model_len=max_model_len, threads=threads)
    raise ValueError(f"unknown engine {kind!r} (supported: auto, transformers, vllm)")


def _vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None
