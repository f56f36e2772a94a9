"""The request body of each client API, strict: what the proxy reads must have the type the
official SDKs give it, or the request is a 422 naming the field.

Lax parsing let ``"stream": "yes"`` stream, cached ``{"type": "text", "text": 5}`` as the
question "5", and sent a Messages ``content: 5`` or a Responses item without a role past
the cache as a BYPASS. Every field the proxy reads is typed here as the SDK types it
(``openai.types.chat.completion_create_params``, ``openai.types.responses.
response_create_params``, ``anthropic.types.message_create_params``;
``tests/test_dialect_requests.py`` checks these models against those types). Fields not
listed are the upstream's to judge: forwarded unchanged, and part of the scope.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.policy.validation import MAX_USER_CHARS

# text parts: OpenAI Chat ("text"), Responses ("input_text", "output_text"), Anthropic ("text")
TEXT_PART_TYPES = ("text", "input_text", "output_text")


class _Strict(BaseModel):
    """No coercion (a string is not a bool, a number not a string); unknown fields kept."""

    model_config = ConfigDict(strict=True, extra="allow")


class ContentPart(_Strict):
    """One part of a message's content: a text part must carry its text as a string;
    other parts (images, files, audio, tool use) are the upstream's to judge."""

    type: str = Field(min_length=1)

    @model_validator(mode="after")
    def _text_is_text(self) -> "ContentPart":
        if self.type in TEXT_PART_TYPES and not isinstance(getattr(self, "text", None), str):
            raise ValueError(f"a {self.type!r} part needs its text as a string")
        return self


Content = str | list[ContentPart]


class ChatMessage(_Strict):
    """One message of a Chat Completions conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(_Strict):
    """An OpenAI Chat Completions request. Parameters not listed here are forwarded to the
    upstream unchanged, and (unless they only change delivery) join the cache scope."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = Field(default=None, max_length=MAX_USER_CHARS)
    metadata: dict[str, str] | None = None


class ResponsesInputItem(_Strict):
    """One item of a Responses ``input``: a message (``role`` and ``content``; ``type``
    "message" or none), or another item (a function call, its output, ...) named by its
    ``type``."""

    type: str | None = None
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: Content | None = None

    @model_validator(mode="after")
    def _message_or_typed(self) -> "ResponsesInputItem":
        if self.type in (None, "message"):
            if self.role is None:
                raise ValueError("a message item needs a role (user, assistant, system, developer)")
            if self.content is None:
                raise ValueError("a message item needs content")
        return self


class ResponsesRequest(_Strict):
    """An OpenAI Responses request. Parameters not listed here are forwarded to the upstream
    unchanged, and (unless they only change delivery) join the cache scope."""

    model: str = Field(min_length=1, max_length=200)
    input: str | list[ResponsesInputItem] = Field(min_length=1)
    instructions: str | None = None
    stream: bool = False
    background: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None
    user: str | None = Field(default=None, max_length=MAX_USER_CHARS)
    metadata: dict[str, str] | None = None


class AnthropicMessage(_Strict):
    role: Literal["user", "assistant"]
    content: Content


class AnthropicMetadata(_Strict):
    user_id: str | None = Field(default=None, max_length=MAX_USER_CHARS)


class MessagesRequest(_Strict):
    """An Anthropic Messages request. Parameters not listed here are forwarded to the
    upstream unchanged, and (unless they only change delivery) join the cache scope."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[AnthropicMessage] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[ContentPart] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    metadata: AnthropicMetadata | None = None
