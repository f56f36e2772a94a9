"""Chat Completions answers in their OpenAI shapes: a whole ``chat.completion``, its
``chat.completion.chunk`` stream, and the assembly of a streamed answer back into one.

A cached answer is kept as a *completion*: ``{model, message, finish_reason, usage}``, the
assistant message as the upstream gave it (tool calls included).
"""

import re
import secrets
import time
from typing import Any

_PIECE = re.compile(r"\S+\s*|\s+")
_WORDS_PER_CHUNK = 3


def text_pieces(text: str) -> list[str]:
    """A text cut into the pieces a replayed stream sends: a few words at a time."""
    pieces = _PIECE.findall(text)
    return [
        "".join(pieces[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(pieces), _WORDS_PER_CHUNK)
    ]


def new_completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def completion_body(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """A stored answer as a ``chat.completion`` body (new id and time; the stored usage)."""
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": completion["message"],
                "finish_reason": completion.get("finish_reason") or "stop",
                "logprobs": None,
            }
        ],
        "usage": completion.get("usage")
        or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def chunks_of(
    chunk_id: str, model: str, completion: dict[str, Any], include_usage: bool
) -> list[dict[str, Any]]:
    """A stored answer as the chunks an upstream streams: a role chunk, the content a few
    words at a time, each tool call, a finish chunk and, when asked for, a usage chunk."""
    created = int(time.time())
    model = completion.get("model") or model

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }

    message = completion["message"]
    chunks = [chunk({"role": "assistant", "content": ""})]
    for piece in text_pieces(message.get("content") or ""):
        chunks.append(chunk({"content": piece}))
    for position, call in enumerate(message.get("tool_calls") or []):
        chunks.append(chunk({"tool_calls": [{"index": position, **call}]}))
    if message.get("refusal"):
        chunks.append(chunk({"refusal": message["refusal"]}))
    chunks.append(chunk({}, completion.get("finish_reason") or "stop"))
    if include_usage:
        usage = completion.get("usage") or {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
        }
        chunks.append({**chunk({}), "choices": [], "usage": usage})
    return chunks


class StreamAssembler:
    """Puts a streamed answer (choice 0) back together, as the OpenAI SDK does."""

    def __init__(self) -> None:
        self.model = ""
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        self.model = str(chunk.get("model") or self.model)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.content.append(delta["content"])
            if delta.get("refusal"):
                self.refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or []:
                self._add_tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _add_tool_call(self, call: dict[str, Any]) -> None:
        slot = self.tool_calls.setdefault(
            int(call.get("index", 0)),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        slot["id"] = call.get("id") or slot["id"]
        slot["type"] = call.get("type") or slot["type"]
        function = call.get("function") or {}
        slot["function"]["name"] += function.get("name") or ""
        slot["function"]["arguments"] += function.get("arguments") or ""

    @property
    def finished(self) -> bool:
        """The upstream said why the answer ended (it was not cut off)."""
        return self.finish_reason is not None

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.content or not self.tool_calls else None,
        }
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        return message
