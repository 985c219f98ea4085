"""OpenAI's Responses API as a translation of Chat Completions (what the engines speak).

``to_chat`` turns a ``/api/v1/responses`` body (``input`` as text or items, or ``messages`` as the
Synth client sends, ``instructions``, function ``tools``, ``text.format``, ``max_output_tokens``)
into a chat request; ``from_chat`` turns the completion into a ``response`` object, and
``ResponseStream`` turns a stream of chat chunks into the Responses event sequence
(``response.created`` ... ``response.output_text.delta`` ... ``response.completed``).
Responses are not stored, so ``previous_response_id`` is refused.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from tuneyard.errors import InvalidRequest

PASS_THROUGH = ("temperature", "top_p", "n", "seed", "stop", "presence_penalty", "frequency_penalty", "user",
                "parallel_tool_calls", "response_format", "logit_bias")
TEXT_PARTS = ("input_text", "output_text", "text")


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type") in TEXT_PARTS and isinstance(part.get("text"), str):
                out.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequest(f"{where}.content[{i}] of type {kind!r} is not supported (text only)",
                                     param=f"{where}.content")
        return "".join(out)
    raise InvalidRequest(f"{where}.content must be a string or a list of text parts", param=f"{where}.content")


def _messages(items: Any, where: str) -> list[dict]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise InvalidRequest(f"{where} must be a string or a non-empty list of messages", param=where)
    out: list[dict] = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{here} must be an object", param=here)
        kind = item.get("type", "message")
        if kind == "message" or ("role" in item and kind not in ("function_call", "function_call_output")):
            role = item.get("role")
            if role not in ("system", "developer", "user", "assistant", "tool"):
                raise InvalidRequest(f"{here}.role must be system, developer, user, assistant or tool", param=here)
            msg = {"role": role, "content": _text(item.get("content"), here)}
            for key in ("tool_calls", "tool_call_id", "name"):
                if item.get(key) is not None:
                    msg[key] = item[key]
            out.append(msg)
        elif kind == "function_call":
            call = {"id": item.get("call_id") or item.get("id") or "call_" + secrets.token_hex(8), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}}
            if out and out[-1]["role"] == "assistant" and out[-1].get("tool_calls") is not None:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str) else json.dumps(output)})
        elif kind == "reasoning":
            continue
        else:
            raise InvalidRequest(f"{here} of type {kind!r} is not supported", param=here)
    return out


def _tools(tools: Any) -> list[dict] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type") != "function":
            kind = t.get("type") if isinstance(t, dict) else None
            raise InvalidRequest(f"tools[{i}] of type {kind!r} is not supported (function tools only)",
                                 param=f"tools[{i}]")
        if isinstance(t.get("function"), dict):  # already in the chat shape
            out.append(t)
            continue
        fn = {k: t[k] for k in ("name", "description", "parameters") if t.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function" and "function" not in choice:
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("previous_response_id"):
        raise InvalidRequest("previous_response_id is not supported: responses are not stored here; send the "
                             "conversation in input", param="previous_response_id", code="unsupported_parameter")
    if body.get("input") is not None:
        messages = _messages(body["input"], "input")
    elif body.get("messages") is not None:
        messages = _messages(body["messages"], "messages")
    else:
        raise InvalidRequest("Missing required parameter: 'input' (or 'messages')", param="input",
                             code="missing_required_parameter")
    if body.get("instructions"):
        messages = [{"role": "system", "content": _text(body["instructions"], "instructions")}, *messages]
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages, "stream": bool(body.get("stream"))}
    for key in PASS_THROUGH:
        if body.get(key) is not None:
            chat[key] = body[key]
    limit = body.get("max_output_tokens", body.get("max_tokens"))
    if limit is not None:
        chat["max_tokens"] = limit
    tools = _tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
        if body.get("tool_choice") is not None:
            chat["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        chat["response_format"] = {"type": fmt["type"], **({"json_schema": {k: v for k, v in fmt.items()
                                                                              if k != "type"}}
                                                           if fmt["type"] == "json_schema" else {})}
    if chat["stream"]:
        chat["stream_options"] = {"include_usage": True}
    return chat


# ---- building the response object -----------------------------------------------------------

def new_ids() -> tuple[str, int]:
    return "resp_" + secrets.token_hex(16), int(time.time())


def _usage(usage: dict | None) -> dict:
    usage = usage or {}
    inp, out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + out}


def _message_item(text: str, status: str = "completed") -> dict:
    return {"id": "msg_" + secrets.token_hex(12), "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(call: dict) -> dict:
    return {"id": "fc_" + secrets.token_hex(12), "type": "function_call", "status": "completed",
            "call_id": call.get("id"), "name": call["function"]["name"], "arguments": call["function"]["arguments"]}


def envelope(resp_id: str, created: int, body: dict, model: str, *, status: str, output: list[dict],
             usage: dict | None, incomplete: str | None = None) -> dict:
    text = "".join(part["text"] for item in output if item["type"] == "message" for part in item["content"]
                   if part["type"] == "output_text")
    return {
        "id": resp_id, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "output_text": text, "usage": usage, "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
        "tools": body.get("tools") or [], "tool_choice": body.get("tool_choice", "auto"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": None, "store": False, "truncation": "disabled", "metadata": body.get("metadata") or {},
        "text": body.get("text") or {"format": {"type": "text"}}, "user": body.get("user"),
    }


def from_chat(completion: dict, body: dict) -> dict:
    resp_id, created = new_ids()
    output: list[dict] = []
    incomplete = None
    for choice in completion.get("choices", []):
        message = choice.get("message") or {}
        if message.get("content"):
            output.append(_message_item(message["content"]))
        output.extend(_call_item(c) for c in message.get("tool_calls") or [])
        if choice.get("finish_reason") == "length":
            incomplete = "max_output_tokens"
    if not output:
        output.append(_message_item(""))
    return envelope(resp_id, created, body, completion.get("model") or body.get("model"),
                    status="incomplete" if incomplete else "completed", output=output,
                    usage=_usage(completion.get("usage")), incomplete=incomplete)


# ---- streaming ------------------------------------------------------------------------------

async def sse_json(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict]:
    """The JSON payloads of an SSE byte stream (``data: {...}``), in order; ``[DONE]`` ends it."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk if isinstance(chunk, bytes) else chunk.encode()
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    return
                try:
                    yield json.loads(payload)
                except ValueError:
                    continue


class ResponseStream:
    """Chat chunks in, Responses streaming events (as SSE bytes) out."""

    def __init__(self, body: dict):
        self.body = body
        self.id, self.created = new_ids()
        self.seq = 0
        self.model = body.get("model")
        self.text = ""
        self.item = _message_item("", status="in_progress")
        self.item["content"] = []
        self.calls: list[dict] = []
        self.usage: dict | None = None
        self.finish: str | None = None
        self.opened = False

    def _event(self, kind: str, **fields) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

    def _snapshot(self, status: str, output: list[dict], usage: dict | None = None) -> dict:
        return envelope(self.id, self.created, self.body, self.model, status=status, output=output, usage=usage,
                        incomplete="max_output_tokens" if status == "incomplete" else None)

    def _open(self) -> list[bytes]:
        self.opened = True
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [self._event("response.output_item.added", output_index=0, item={**self.item, "content": []}),
                self._event("response.content_part.added", item_id=self.item["id"], output_index=0, content_index=0,
                            part=part)]

    async def events(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        yield self._event("response.created", response=self._snapshot("in_progress", []))
        yield self._event("response.in_progress", response=self._snapshot("in_progress", []))
        async for chunk in sse_json(chunks):
            if "error" in chunk and "choices" not in chunk:
                err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
                yield self._event("error", code=err.get("code"), message=err.get("message"), param=err.get("param"))
                return
            self.model = chunk.get("model") or self.model
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    if not self.opened:
                        for e in self._open():
                            yield e
                    self.text += delta["content"]
                    yield self._event("response.output_text.delta", item_id=self.item["id"], output_index=0,
                                      content_index=0, delta=delta["content"], logprobs=[])
                for call in delta.get("tool_calls") or []:
                    self.calls.append(call)
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
        for e in self._close():
            yield e

    def _close(self) -> list[bytes]:
        events = []
        output = []
        if self.opened or not self.calls:
            if not self.opened:
                events.extend(self._open())
            part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
            item = {**self.item, "status": "completed", "content": [part]}
            events += [self._event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0,
                                   text=self.text, logprobs=[]),
                       self._event("response.content_part.done", item_id=item["id"], output_index=0,
                                   content_index=0, part=part),
                       self._event("response.output_item.done", output_index=0, item=item)]
            output.append(item)
        for call in self.calls:
            item = _call_item({"id": call.get("id"), "function": call.get("function") or {}})
            index = len(output)
            events += [self._event("response.output_item.added", output_index=index, item={**item, "arguments": "",
                                                                                           "status": "in_progress"}),
                       self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                   arguments=item["arguments"]),
                       self._event("response.output_item.done", output_index=index, item=item)]
            output.append(item)
        status = "incomplete" if self.finish == "length" else "completed"
        events.append(self._event(f"response.{status}", response=self._snapshot(status, output, _usage(self.usage))))
        return events
