"""``/v1/deployments``: create, list, get, stop, wait, chat (whole or streamed), requests, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from tuneyard.client import errors
from tuneyard.client._base import ResourceGroup
from tuneyard.client.types import APIObject, Deployment, Page

Message = dict[str, Any]


class Deployments(ResourceGroup):
    def create(self, model: str, name: str | None = None, *, source: str | None = None,
               gpu_type: str | None = None, gpu_count: int | None = None, provider: str | None = None,
               **extra: Any) -> Deployment:
        """Serve ``model``: a training job id or fine-tune output name, or a base model available here.

        ``source`` (``training_job`` | ``huggingface``) is optional: the server tells them apart.
        """
        body: dict[str, Any] = {"model": model, "name": name, "source": source, "provider": provider, **extra}
        if gpu_type:
            body["gpu"] = {"gpu_type": gpu_type, "gpu_count": gpu_count or 1}
        body = {k: v for k, v in body.items() if v is not None}
        return Deployment.model_validate(self._t.json("POST", "/v1/deployments", json=body))

    def get(self, deployment_id: str) -> Deployment:
        return Deployment.model_validate(self._t.json("GET", f"/v1/deployments/{deployment_id}"))

    def list(self, *, limit: int = 20, after: str | None = None, status: str | None = None) -> Page[Deployment]:
        return self._list("/v1/deployments", Deployment, limit=limit, after=after, status=status)

    def stop(self, deployment_id: str) -> Deployment:
        return Deployment.model_validate(self._t.json("POST", f"/v1/deployments/{deployment_id}/stop"))

    def wait(self, deployment_id: str, *, timeout: float | None = 600, poll_interval: float = 1.0,
             on_status: Callable[[Deployment], None] | None = None) -> Deployment:
        """Poll until the deployment is serving, failed or stopped; ``on_status`` sees each change."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            dep = self.get(deployment_id)
            if on_status is not None and dep.status != last:
                on_status(dep)
            last = dep.status
            if dep.settled:
                return dep
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.WaitTimeout(f"deployment {deployment_id} is still {dep.status} after {timeout:g}s")
            time.sleep(poll_interval)

    def chat(self, deployment_id: str, messages: list[Message] | str, *, model: str | None = None,
             temperature: float | None = None, max_tokens: int | None = None, **extra: Any) -> dict:
        """One OpenAI ``chat.completion`` (a dict); a string is sent as a single user message."""
        body = _chat_body(messages, model, temperature, max_tokens, extra)
        return self._t.json("POST", f"/v1/deployments/{deployment_id}/chat/completions", json=body,
                            idempotent=True, timeout=600)

    def chat_stream(self, deployment_id: str, messages: list[Message] | str, *, model: str | None = None,
                    temperature: float | None = None, max_tokens: int | None = None,
                    **extra: Any) -> Iterator[dict]:
        """OpenAI ``chat.completion.chunk`` dicts as the model produces them."""
        body = {**_chat_body(messages, model, temperature, max_tokens, extra), "stream": True}
        with self._t.sse("POST", f"/v1/deployments/{deployment_id}/chat/completions", json=body,
                         read_timeout=600) as stream:
            for sse in stream:
                if sse.data.strip() == "[DONE]":
                    return
                if not sse.data.strip():
                    continue
                chunk = json.loads(sse.data)
                if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                    raise errors.ServerError(chunk["error"].get("message") or "generation failed",
                                             code=chunk["error"].get("code"), type=chunk["error"].get("type"))
                yield chunk

    def stream_text(self, deployment_id: str, messages: list[Message] | str, **kwargs: Any) -> Iterator[str]:
        """Just the text of a streamed answer, piece by piece."""
        for chunk in self.chat_stream(deployment_id, messages, **kwargs):
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece

    def requests(self, deployment_id: str, *, limit: int = 50, after: str | None = None) -> Page[APIObject]:
        """Per-request logs (status code, latency, tokens), newest first."""
        return self._list(f"/v1/deployments/{deployment_id}/requests", APIObject, limit=limit, after=after)

    def events(self, deployment_id: str) -> Page[APIObject]:
        """Lifecycle events: queued, provisioning, serving, health changes, stops."""
        return self._list(f"/v1/deployments/{deployment_id}/events", APIObject, limit=None)

    def metrics(self, deployment_id: str) -> dict:
        return self._t.json("GET", f"/v1/deployments/{deployment_id}/metrics")


def _chat_body(messages, model, temperature, max_tokens, extra) -> dict:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens, **extra}
    return {k: v for k, v in body.items() if v is not None}


def completion_text(completion: dict) -> str:
    """``choices[0].message.content`` of a chat completion ('' when absent)."""
    choices = completion.get("choices") or []
    if not choices:
        return ""
    return (choices[0].get("message") or {}).get("content") or ""
