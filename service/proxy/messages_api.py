"""``POST /v1/messages``: the Anthropic Messages dialect of the proxy.

Keyed like a chat: ``system`` and every turn before the last user message are the
conversation, the last user message's text is the question, and every other field that
changes the answer (model, max_tokens, temperature, tools, tool_choice, stop_sequences,
top_p, top_k, thinking, ...) joins the scope. The upstream is an Anthropic Messages
endpoint (``DYNACACHE_ANTHROPIC_BASE_URL``, with ``x-api-key`` and ``anthropic-version``);
without one, the configured chat LLM answers, in Messages shapes. An answer is kept when
the upstream ended it itself and it is text only (tool use is served, not kept).
"""

import secrets
from typing import Any

import orjson

from service.llm.chat_format import text_pieces
from service.llm.client import LLMReply, UpstreamFailed
from service.proxy.dialect import Event, NativeDialect, Sse, joined_text, named_user

# Chat Completions' finish reasons and Anthropic's stop reasons, both ways
_STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_FINISH_REASON = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "stop",
}


def chat_form(body: dict[str, Any]) -> dict[str, Any]:
    """The request as a chat for keying: ``system`` and the turns as messages."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": joined_text(system, ("text",))})
    for turn in body.get("messages") or []:
        if isinstance(turn, dict):
            messages.append(
                {"role": turn.get("role"), "content": joined_text(turn.get("content"), ("text",))}
            )
    rest = {k: v for k, v in body.items() if k not in ("messages", "system")}
    return {**rest, "messages": messages}


def message_body(completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A stored answer as a Messages ``message``."""
    usage = completion.get("usage") or {}
    return {
        "id": f"msg_{secrets.token_hex(12)}",
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or body.get("model") or "",
        "content": [{"type": "text", "text": completion["message"].get("content") or ""}],
        "stop_reason": _STOP_REASON.get(completion.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
        },
    }


def reply_from_message(payload: dict[str, Any], latency_ms: float, model: str) -> LLMReply:
    """A Messages answer in the canonical form (``storable`` only when it is text and the
    upstream ended it itself)."""
    if payload.get("type") != "message" or not isinstance(payload.get("content"), list):
        raise UpstreamFailed("upstream answer is not a message")
    blocks = payload["content"]
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    usage = payload.get("usage") or {}
    stop_reason = str(payload.get("stop_reason") or "end_turn")
    given, made = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return LLMReply(
        text=text,
        latency_ms=latency_ms,
        model=str(payload.get("model") or model),
        message={"role": "assistant", "content": text},
        finish_reason=_FINISH_REASON.get(stop_reason, "stop"),
        usage={"prompt_tokens": given, "completion_tokens": made, "total_tokens": given + made},
        payload=payload,
        storable=all(b.get("type") == "text" for b in blocks) and stop_reason != "pause_turn",
    )


class MessagesAssembler:
    """Puts a Messages stream back into one ``message``."""

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.stopped = False

    def add(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self.message = dict(event.get("message") or {})
        elif kind == "content_block_start":
            self.blocks[int(event.get("index", 0))] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            block = self.blocks.setdefault(int(event.get("index", 0)), {"type": "text"})
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                block["text"] = str(block.get("text", "")) + str(delta.get("text", ""))
            else:  # tool input, thinking: not text
                block["type"] = block.get("type") or "other"
        elif kind == "message_delta":
            self.message.update(event.get("delta") or {})
            usage = {**(self.message.get("usage") or {}), **(event.get("usage") or {})}
            self.message["usage"] = usage
        elif kind == "message_stop":
            self.stopped = True

    @property
    def finished(self) -> bool:
        return self.stopped and bool(self.message.get("stop_reason"))

    def reply(self, latency_ms: float, model: str) -> LLMReply:
        whole = {
            **self.message,
            "type": "message",
            "content": [self.blocks[i] for i in sorted(self.blocks)],
        }
        return reply_from_message(whole, latency_ms, model)


class MessagesDialect(NativeDialect):
    name = "messages"
    path = "/messages"

    def chat_form(self, body: dict[str, Any]) -> dict[str, Any]:
        return chat_form(body)

    def end_user_of(self, body: dict[str, Any]) -> str | None:
        """Anthropic's ``metadata.user_id``."""
        metadata = body.get("metadata")
        return named_user(metadata.get("user_id")) if isinstance(metadata, dict) else None

    def answer(self, completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return message_body(completion, body)

    def reply_from(self, payload: dict[str, Any], latency_ms: float, model: str) -> LLMReply:
        return reply_from_message(payload, latency_ms, model)

    def assembler(self) -> MessagesAssembler:
        return MessagesAssembler()

    def replay(self, completion: dict[str, Any], body: dict[str, Any]) -> list[Event]:
        whole = message_body(completion, body)
        text = whole["content"][0]["text"]
        start = {
            **whole,
            "content": [],
            "stop_reason": None,
            "usage": {**whole["usage"], "output_tokens": 0},
        }
        return [
            {"type": "message_start", "message": start},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            *(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                }
                for piece in text_pieces(text)
            ),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": whole["usage"]["output_tokens"]},
            },
            {"type": "message_stop"},
        ]

    def stream_error(self, error: Exception) -> Sse:
        problem = {"type": "error", "error": {"type": "api_error", "message": str(error)}}
        return {"event": "error", "data": orjson.dumps(problem).decode()}
