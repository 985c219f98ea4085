"""From an OpenAI chat request to engine requests and back: prompt rendering, JSON mode, tool
calls, and the ``chat.completion`` / ``chat.completion.chunk`` objects.

Tools reach the model as a system section in the Hermes/Qwen convention (most chat templates,
SmolLM2's included, have no tool slot): calls come back as ``<tool_call>{"name", "arguments"}
</tool_call>``. With ``tool_choice`` ``required`` or a named function the call is not left to
chance: the output is constrained to ``{"name": <a tool>, "arguments": <object>}``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tuneyard.inference.chat_schema import ChatCompletionRequest, InvalidChatRequest
from tuneyard.inference.constraints import JsonAcceptor, SequenceAcceptor
from tuneyard.inference.engine import Engine, GenerationRequest
from tuneyard.inference.sampling import SamplingParams

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
_TOOL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class Prepared:
    request: ChatCompletionRequest
    gen: GenerationRequest
    tools_mode: str  # "none" | "auto" | "forced"
    tool_names: list[str] = field(default_factory=list)


def _tool_system_text(req: ChatCompletionRequest) -> str:
    specs = "\n".join(json.dumps(t.model_dump(exclude_none=True)) for t in req.tools or [])
    return ("You can call functions. Their signatures (JSON Schema):\n<tools>\n" + specs + "\n</tools>\n"
            "To call a function, reply with only:\n<tool_call>\n"
            '{"name": "<function name>", "arguments": {<arguments as JSON>}}\n</tool_call>')


def render_messages(req: ChatCompletionRequest, tools_mode: str) -> list[dict[str, str]]:
    """Messages as plain ``{role, content}`` the chat template understands."""
    out: list[dict[str, str]] = []
    for m in req.messages:
        role = {"developer": "system", "function": "tool"}.get(m.role, m.role)
        content = m.text()
        if m.role == "assistant" and m.tool_calls:
            calls = "\n".join(TOOL_OPEN + "\n" + json.dumps({"name": c.function.name, "arguments": _args(c)})
                              + "\n" + TOOL_CLOSE for c in m.tool_calls)
            content = (content + "\n" + calls).strip()
        if role == "tool":
            content = f"<tool_response>\n{content}\n</tool_response>"
        out.append({"role": role, "content": content})
    if tools_mode != "none":
        extra = _tool_system_text(req)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + extra}
        else:
            out.insert(0, {"role": "system", "content": extra})
    return out


def _args(call) -> Any:
    args = call.function.arguments
    if isinstance(args, str):
        try:
            return json.loads(args)
        except json.JSONDecodeError:
            return args
    return args


def prepare(req: ChatCompletionRequest, engine: Engine, *, request_id: str, adapter: str | None,
            default_max_tokens: int) -> Prepared:
    """Validate against the model (context length) and build the engine request."""
    names = [t.function.name for t in req.tools or []]
    choice = req.tool_choice
    if not names or choice == "none":
        tools_mode = "none"
    elif choice == "required" or (choice is not None and not isinstance(choice, str)):
        tools_mode = "forced"
    else:
        tools_mode = "auto"
    if tools_mode == "forced" and not isinstance(choice, str):
        names = [choice.function["name"]]
    messages = render_messages(req, tools_mode)
    tok = engine.tokenizer
    try:
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # a template that rejects this conversation (e.g. role order)
        raise InvalidChatRequest(f"These messages do not fit the model's chat template: {exc}", "messages") from None
    constraint = None
    if tools_mode == "forced":
        prompt += TOOL_OPEN + "\n"
        parts = [("lit", '{"name": "'), ("choice", names), ("lit", '", "arguments": '), ("json", JsonAcceptor()),
                 ("lit", "}")]
        constraint = lambda: SequenceAcceptor(parts)  # noqa: E731
    elif req.response_format is not None and req.response_format.type in ("json_object", "json_schema"):
        constraint = JsonAcceptor
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    limit = engine.max_model_len
    wanted = req.max_completion_tokens or req.max_tokens
    if len(prompt_ids) >= limit or (wanted and len(prompt_ids) + wanted > limit):
        raise InvalidChatRequest(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{len(prompt_ids) + (wanted or 0)} tokens ({len(prompt_ids)} in the messages, {wanted or 0} in the "
            "completion). Please reduce the length of the messages or completion.", "messages",
            "context_length_exceeded")
    max_tokens = wanted or min(default_max_tokens, limit - len(prompt_ids))
    temperature = 1.0 if req.temperature is None else req.temperature
    top_p = 1.0 if req.top_p is None else req.top_p
    params = SamplingParams(
        max_tokens=max_tokens, temperature=0.0 if top_p == 0 else temperature, top_p=top_p or 1.0,
        presence_penalty=req.presence_penalty or 0.0, frequency_penalty=req.frequency_penalty or 0.0,
        seed=req.seed, stop=req.stop_list, logit_bias={int(k): v for k, v in (req.logit_bias or {}).items()},
        ignore_eos=bool(req.ignore_eos))
    gen = GenerationRequest(request_id=request_id, prompt_ids=prompt_ids, params=params, n=req.n or 1,
                            adapter=adapter, constraint=constraint)
    return Prepared(req, gen, tools_mode, names)


def parse_tool_calls(text: str, mode: str, names: list[str], parallel: bool = True
                     ) -> tuple[str | None, list[dict] | None]:
    """(content, tool_calls) from a finished choice; tool_calls is None when there are none."""
    if mode == "none":
        return text, None
    bodies = [text] if mode == "forced" else _TOOL_BLOCK.findall(text)
    if not bodies and text.strip().startswith("{"):
        bodies = [text.strip()]
    calls = []
    for body in bodies:
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict) or obj.get("name") not in names:
            continue
        args = obj.get("arguments", {})
        calls.append({"id": "call_" + secrets.token_hex(12), "type": "function",
                      "function": {"name": obj["name"], "arguments": args if isinstance(args, str)
                                   else json.dumps(args)}})
    if not calls:
        return text, None
    if parallel is False:
        calls = calls[:1]
    rest = "" if mode == "forced" else _TOOL_BLOCK.sub("", text).strip()
    return rest or None, calls


class ChatRun:
    """One request in flight: collects engine outputs into a completion or a chunk stream."""

    def __init__(self, prepared: Prepared, engine: Engine, model_name: str, request_id: str):
        self.p, self.engine, self.model = prepared, engine, model_name
        self.id = "chatcmpl-" + request_id.removeprefix("req_")
        self.created = int(time.time())
        self.fingerprint = f"tuneyard-{engine.name}"
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.completion_tokens = 0
        self.finish_reasons: list[str | None] = [None] * prepared.gen.n

    @property
    def prompt_tokens(self) -> int:
        return len(self.p.gen.prompt_ids)

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    def stats(self) -> dict[str, Any]:
        ttft = (self.first_token_at - self.started) * 1000 if self.first_token_at else None
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "finish_reason": self.finish_reasons[0], "engine_ttft_ms": round(ttft, 2) if ttft else None}

    def _track(self, out, counts: list[int]) -> None:
        if self.first_token_at is None and out.completion_tokens:
            self.first_token_at = time.monotonic()
        counts[out.index] = out.completion_tokens
        self.completion_tokens = sum(counts)

    def _finish(self, index: int, reason: str | None, calls) -> str:
        reason = "tool_calls" if calls else ("stop" if reason in (None, "stop") else reason)
        self.finish_reasons[index] = reason
        return reason

    async def complete(self) -> dict[str, Any]:
        n = self.p.gen.n
        texts, counts = [""] * n, [0] * n
        reasons: list[str | None] = [None] * n
        async for out in self.engine.generate(self.p.gen):
            self._track(out, counts)
            texts[out.index] += out.text
            if out.finished:
                reasons[out.index] = out.finish_reason
        choices = []
        for i in range(n):
            content, calls = parse_tool_calls(texts[i], self.p.tools_mode, self.p.tool_names,
                                              self.p.request.parallel_tool_calls is not False)
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if calls:
                message["tool_calls"] = calls
            choices.append({"index": i, "message": message, "logprobs": None,
                            "finish_reason": self._finish(i, reasons[i], calls)})
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "system_fingerprint": self.fingerprint, "choices": choices, "usage": self.usage(),
                "service_tier": "default"}

    def _chunk(self, choices: list[dict], usage: dict | None = None, with_usage_field: bool = False) -> bytes:
        body: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model, "system_fingerprint": self.fingerprint, "choices": choices}
        if with_usage_field:
            body["usage"] = usage
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    async def stream(self) -> AsyncIterator[bytes]:
        """SSE chunks; the role goes out with each choice's first text. Tool calls in ``auto`` mode are
        held back only while the text could still be one, then sent whole at the end."""
        n = self.p.gen.n
        include_usage = bool(self.p.request.stream_options and self.p.request.stream_options.include_usage)
        counts, started = [0] * n, [False] * n
        held, texts = [""] * n, [""] * n
        holding = [self.p.tools_mode != "none"] * n
        parallel = self.p.request.parallel_tool_calls is not False
        async for out in self.engine.generate(self.p.gen):
            self._track(out, counts)
            i = out.index
            texts[i] += out.text
            delta_text = out.text
            if holding[i]:
                held[i] += out.text
                delta_text = ""
                if self.p.tools_mode == "auto" and not _maybe_tool_call(held[i]):
                    holding[i], delta_text, held[i] = False, held[i], ""
            choices = []
            if delta_text:
                delta = {"content": delta_text}
                if not started[i]:
                    delta = {"role": "assistant", **delta}
                    started[i] = True
                choices.append({"index": i, "delta": delta, "logprobs": None, "finish_reason": None})
            if out.finished:
                calls = None
                if holding[i]:
                    content, calls = parse_tool_calls(texts[i], self.p.tools_mode, self.p.tool_names, parallel)
                    delta = {"role": "assistant"} if not started[i] else {}
                    started[i] = True
                    if calls:
                        delta["tool_calls"] = [{"index": k, **c} for k, c in enumerate(calls)]
                        if content:
                            delta["content"] = content
                    else:
                        delta["content"] = held[i]
                    choices.append({"index": i, "delta": delta, "logprobs": None, "finish_reason": None})
                reason = self._finish(i, out.finish_reason, calls)
                choices.append({"index": i, "delta": {}, "logprobs": None, "finish_reason": reason})
            for choice in choices:
                yield self._chunk([choice], None, include_usage)
        if include_usage:
            yield self._chunk([], self.usage(), True)
        yield b": tuneyard-stats " + json.dumps(self.stats(), separators=(",", ":")).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


def _maybe_tool_call(text: str) -> bool:
    s = text.lstrip()
    return not s or s.startswith(("{", TOOL_OPEN)) or TOOL_OPEN.startswith(s)
