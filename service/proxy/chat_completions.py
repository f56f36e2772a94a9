"""``POST /v1/chat/completions``: the OpenAI Chat Completions dialect of the proxy.

Keyed by ``service/keying/chat_key.py``; the upstream is the configured LLM client; stored
answers are Chat Completions completions already, given back as a ``chat.completion`` or as
its ``chat.completion.chunk`` stream ending in ``[DONE]``.
"""

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from service.keying.chat_key import ChatKey, chat_key
from service.keying.rag import RagSplitter
from service.llm.chat_format import StreamAssembler, chunks_of, completion_body, new_completion_id
from service.llm.client import LLMClient, LLMReply, UpstreamTimedOut
from service.proxy.dialect import Event, Sse, named_user

_DONE: Sse = {"data": "[DONE]"}


class ChatAssembler:
    def __init__(self) -> None:
        self.parts = StreamAssembler()

    def add(self, event: Event) -> None:
        self.parts.add(event)

    @property
    def finished(self) -> bool:
        return self.parts.finished

    def reply(self, latency_ms: float, model: str) -> LLMReply:
        message = self.parts.message()
        return LLMReply(
            text=message.get("content") or "",
            latency_ms=latency_ms,
            model=self.parts.model or model,
            message=message,
            finish_reason=self.parts.finish_reason or "stop",
            usage=self.parts.usage,
        )


class ChatDialect:
    name = "chat"

    def __init__(self, llm: LLMClient, splitter: RagSplitter, max_temperature: float) -> None:
        self.llm = llm
        self.splitter = splitter
        self.max_temperature = max_temperature

    def key(self, body: dict[str, Any], user: str) -> ChatKey:
        return chat_key(self.splitter, body, self.max_temperature, user)

    def streamed(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def end_user_of(self, body: dict[str, Any]) -> str | None:
        return named_user(body.get("user"))

    async def call(self, body: dict[str, Any]) -> LLMReply:
        return await self.llm.chat(body)

    def stream(self, body: dict[str, Any]) -> AsyncGenerator[Event, None]:
        return self.llm.stream_chat(body)

    def assembler(self) -> ChatAssembler:
        return ChatAssembler()

    def answer(self, completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return completion_body(completion, str(body["model"]))

    def replay(self, completion: dict[str, Any], body: dict[str, Any]) -> list[Event]:
        return chunks_of(new_completion_id(), str(body["model"]), completion, include_usage=True)

    def sse(self, event: Event, body: dict[str, Any]) -> Sse | None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if event.get("choices") or include_usage:
            return {"data": orjson.dumps(event).decode()}
        return None  # a usage-only chunk the client did not ask for

    def stream_end(self) -> list[Sse]:
        return [_DONE]

    def stream_error(self, error: Exception) -> Sse:
        code = "upstream_timeout" if isinstance(error, UpstreamTimedOut) else "upstream_error"
        problem = {"error": {"message": str(error), "type": "upstream_error", "code": code}}
        return {"data": orjson.dumps(problem).decode()}
