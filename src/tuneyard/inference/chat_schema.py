"""The OpenAI Chat Completions request, validated: unknown fields are ignored, invalid ones are
a 400 in OpenAI's error shape (``{"error": {message, type, code, param}}``).

Kept free of torch and transformers, so anything (the worker, a client-side check) can import it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class InvalidChatRequest(ValueError):
    """A request the engine cannot serve as asked; becomes a 400."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": "invalid_request_error", "param": self.param,
                          "code": self.code}}


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Loose):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCall(_Loose):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, value):
        if isinstance(value, list):
            for part in value:
                kind = part.get("type")
                if kind not in ("text", "input_text") or not isinstance(part.get("text"), str):
                    raise ValueError(f"content parts of type {kind!r} are not supported by this model (text only)")
        return value

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part["text"] for part in self.content)
        return self.content or ""


class FunctionDef(_Loose):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Loose):
    type: Literal["function"]
    function: FunctionDef


class NamedToolChoice(_Loose):
    type: Literal["function"]
    function: dict[str, Any]

    @field_validator("function")
    @classmethod
    def _named(cls, value):
        if not isinstance(value.get("name"), str):
            raise ValueError("tool_choice.function.name is required")
        return value


class StreamOptions(_Loose):
    include_usage: bool = False


class ResponseFormat(_Loose):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(_Loose):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=16)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    # vLLM's extension, for fixed-length benchmarks: keep generating past the end-of-sequence token.
    ignore_eos: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 4 or any(not s for s in stops)):
            raise ValueError("stop takes up to 4 non-empty strings")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value):
        for key, bias in (value or {}).items():
            if not key.isdigit():
                raise ValueError(f"logit_bias keys are token ids, got {key!r}")
            if not -100 <= bias <= 100:
                raise ValueError("logit_bias values must be between -100 and 100")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        if self.logprobs:
            raise ValueError("logprobs are not supported by this deployment")
        names = {t.function.name for t in self.tools or []}
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function["name"] not in names:
            raise ValueError(f"tool_choice names {self.tool_choice.function['name']!r}, which is not in tools")
        if self.tool_choice == "required" and not names:
            raise ValueError("tool_choice 'required' needs tools")
        return self

    @property
    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


_PARAM_OF_CHECK = {"stream_options is": "stream_options", "logprobs are": "logprobs", "tool_choice": "tool_choice"}


def parse_request(body: Any) -> ChatCompletionRequest:
    if not isinstance(body, dict):
        raise InvalidChatRequest("The request body must be a JSON object", code="invalid_json")
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith(("function-", "literal", "str", "list",
                                                                            "dict", "NamedToolChoice"))]
        param = ".".join(loc) or None
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if param is None:
            param = next((p for prefix, p in _PARAM_OF_CHECK.items() if message.startswith(prefix)), None)
        if err.get("type") == "missing":
            message = f"Missing required parameter: '{param}'"
            code = "missing_required_parameter"
        else:
            message = f"Invalid value for '{param}': {message}" if param else message
            code = "invalid_value"
        raise InvalidChatRequest(message, param, code) from None
