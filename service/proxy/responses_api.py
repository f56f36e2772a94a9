"""``POST /v1/responses``: the OpenAI Responses dialect of the proxy.

Keyed like a chat: ``instructions`` and every input item before the last user message are the
conversation (so a HIT needs the same), the last user message's text is the question, and
every other field that changes the answer (model, tools, temperature, max_output_tokens,
reasoning, text format, previous_response_id, ...) joins the scope. ``background``
requests are not cached. The upstream is the OpenAI upstream's ``/responses``; with the
simulated LLM, its chat answer in Responses shapes. An answer is kept when the upstream
completed it and it is text (and function calls); other output items are served, not kept.
"""

import secrets
import time
from typing import Any

import orjson

from service.keying.chat_key import ChatKey
from service.llm.chat_format import text_pieces
from service.llm.client import LLMReply, UpstreamFailed
from service.proxy.dialect import Event, NativeDialect, Sse, joined_text

_TEXT_PARTS = ("input_text", "output_text", "text")
_ROLES = ("user", "assistant", "system", "developer")
_KEPT_ITEMS = ("message", "function_call", "reasoning")


def chat_form(body: dict[str, Any]) -> dict[str, Any]:
    """The request as a chat for keying: instructions and input items as messages."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
    for item in items:
        if (
            isinstance(item, dict)
            and item.get("role") in _ROLES
            and item.get("type", "message") == "message"
        ):
            messages.append(
                {"role": item["role"], "content": joined_text(item.get("content"), _TEXT_PARTS)}
            )
        else:  # function calls and their outputs, as given: part of the conversation
            messages.append({"role": "item", "content": [item]})
    rest = {k: v for k, v in body.items() if k not in ("input", "instructions")}
    return {**rest, "messages": messages}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def output_items(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored answer's message (and function calls) as Responses output items."""
    message = completion["message"]
    items: list[dict[str, Any]] = []
    if message.get("content") or not message.get("tool_calls"):
        items.append(
            {
                "id": _new_id("msg"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": message.get("content") or "", "annotations": []}
                ],
            }
        )
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        items.append(
            {
                "id": _new_id("fc"),
                "type": "function_call",
                "status": "completed",
                "call_id": call.get("id") or _new_id("call"),
                "name": function.get("name", ""),
                "arguments": function.get("arguments", ""),
            }
        )
    return items


def response_body(
    completion: dict[str, Any],
    body: dict[str, Any],
    output: list[dict[str, Any]],
    status: str = "completed",
) -> dict[str, Any]:
    usage = completion.get("usage") or {}
    return {
        "id": _new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": completion.get("model") or body.get("model") or "",
        "output": output,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        },
    }


def reply_from_response(payload: dict[str, Any], latency_ms: float, model: str) -> LLMReply:
    """A Responses answer in the canonical form (``storable`` only when the upstream
    completed it and every output item is one the canonical form holds)."""
    if payload.get("object") != "response" or not isinstance(payload.get("output"), list):
        raise UpstreamFailed("upstream answer is not a response object")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    storable = payload.get("status") == "completed"
    for item in payload["output"]:
        kind = item.get("type") if isinstance(item, dict) else None
        storable = storable and kind in _KEPT_ITEMS
        if kind == "message":
            texts += [
                p.get("text", "")
                for p in item.get("content") or []
                if p.get("type") == "output_text"
            ]
        elif kind == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments")}
            calls.append({"id": item.get("call_id"), "type": "function", "function": function})
    usage = payload.get("usage") or {}
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return LLMReply(
        text="".join(texts),
        latency_ms=latency_ms,
        model=str(payload.get("model") or model),
        message=message,
        finish_reason="tool_calls" if calls else "stop",
        usage={
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        },
        payload=payload,
        storable=storable,
    )


class ResponsesAssembler:
    def __init__(self) -> None:
        self.completed: dict[str, Any] | None = None

    def add(self, event: Event) -> None:
        if event.get("type") == "response.completed" and isinstance(event.get("response"), dict):
            self.completed = event["response"]

    @property
    def finished(self) -> bool:
        return self.completed is not None

    def reply(self, latency_ms: float, model: str) -> LLMReply:
        assert self.completed is not None
        return reply_from_response(self.completed, latency_ms, model)


class ResponsesDialect(NativeDialect):
    name = "responses"
    path = "/responses"

    def chat_form(self, body: dict[str, Any]) -> dict[str, Any]:
        return chat_form(body)

    def key(self, body: dict[str, Any], user: str) -> ChatKey:
        if body.get("background"):
            return ChatKey(None, "a background response")
        return super().key(body, user)

    def answer(self, completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return response_body(completion, body, output_items(completion))

    def reply_from(self, payload: dict[str, Any], latency_ms: float, model: str) -> LLMReply:
        return reply_from_response(payload, latency_ms, model)

    def assembler(self) -> ResponsesAssembler:
        return ResponsesAssembler()

    def replay(self, completion: dict[str, Any], body: dict[str, Any]) -> list[Event]:
        items = output_items(completion)
        done = response_body(completion, body, items)
        started = {**done, "status": "in_progress", "output": []}
        events: list[Event] = [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
        ]
        for index, item in enumerate(items):
            if item["type"] != "message":
                events += [
                    {"type": "response.output_item.added", "output_index": index, "item": item},
                    {"type": "response.output_item.done", "output_index": index, "item": item},
                ]
                continue
            text = item["content"][0]["text"]
            at = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events += [
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                },
                {
                    "type": "response.content_part.added",
                    **at,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                },
                *(
                    {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
                    for piece in text_pieces(text)
                ),
                {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
                {"type": "response.content_part.done", **at, "part": item["content"][0]},
                {"type": "response.output_item.done", "output_index": index, "item": item},
            ]
        events.append({"type": "response.completed", "response": done})
        return [{**event, "sequence_number": n} for n, event in enumerate(events)]

    def stream_error(self, error: Exception) -> Sse:
        problem = {
            "type": "error",
            "code": "upstream_error",
            "message": str(error),
            "param": None,
            "sequence_number": 0,
        }
        return {"event": "error", "data": orjson.dumps(problem).decode()}
