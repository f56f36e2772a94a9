"""What a client API must say for the proxy to cache it (``service/proxy/api_proxy.py``).

Each API (Chat Completions, Responses, Anthropic Messages) is a *dialect*: how a request is
keyed, how the upstream is asked in that API (whole or streamed), how a streamed answer is
put back together, and how a stored answer is given back in that API's shapes. An entry
keeps one canonical form of the answer, a Chat Completions *completion*
(``{model, message, finish_reason, usage}``), so an answer stored through one API can serve
another when the request is the same (a bare question to the same model).
"""

import time
from collections.abc import AsyncGenerator
from typing import Any, Protocol

import orjson

from service.keying.chat_key import ChatKey, chat_key
from service.keying.rag import RagSplitter
from service.llm.client import LLMClient, LLMReply
from service.llm.http_upstream import HttpUpstream

Event = dict[str, Any]  # one event of an upstream stream (its data object)
Sse = dict[str, str]  # one server-sent event as sse-starlette takes it (data, event)


def joined_text(content: Any, text_types: tuple[str, ...]) -> Any:
    """A content list of text parts (of ``text_types``) as one text; anything else (images,
    files, tool use) as given, which keeps such a question out of the cache."""
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") in text_types for part in content
    ):
        return "\n".join(str(part.get("text", "")) for part in content)
    return content


def named_user(value: Any) -> str | None:
    """A user field's value, when it is text (``service/policy/user_scope.py`` reads it)."""
    return value if isinstance(value, str) else None


class Assembler(Protocol):
    """Puts a streamed answer back together."""

    def add(self, event: Event) -> None: ...

    @property
    def finished(self) -> bool:
        """The upstream ended the answer itself (it was not cut off)."""
        ...

    def reply(self, latency_ms: float, model: str) -> LLMReply: ...


class Dialect(Protocol):
    name: str

    def key(self, body: dict[str, Any], user: str) -> ChatKey:
        """What the request is cached under (or why it bypasses the cache)."""
        ...

    def streamed(self, body: dict[str, Any]) -> bool: ...

    def end_user_of(self, body: dict[str, Any]) -> str | None:
        """The end user the request names in its own body (None: it names none)."""
        ...

    async def call(self, body: dict[str, Any]) -> LLMReply:
        """Ask the upstream for a whole answer (``payload``: its body, as the client gets it;
        ``storable`` False for what the canonical form cannot hold)."""
        ...

    def stream(self, body: dict[str, Any]) -> AsyncGenerator[Event, None]: ...

    def assembler(self) -> Assembler: ...

    def answer(self, completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """A stored answer as this API's whole answer."""
        ...

    def replay(self, completion: dict[str, Any], body: dict[str, Any]) -> list[Event]:
        """A stored answer as this API's stream of events."""
        ...

    def sse(self, event: Event, body: dict[str, Any]) -> Sse | None:
        """An event as sent to this client (None: not for it, e.g. usage it did not ask)."""
        ...

    def stream_end(self) -> list[Sse]: ...

    def stream_error(self, error: Exception) -> Sse: ...


class NativeDialect:
    """A client API with an upstream of its own (``path`` on it), or, without one, answered
    by the configured chat LLM and translated. Subclasses say how a request reads as a chat
    (for keying), and how answers look in their API."""

    name = "native"
    path = "/"

    def __init__(
        self,
        upstream: HttpUpstream | None,
        llm: LLMClient,
        splitter: RagSplitter,
        max_temperature: float,
    ) -> None:
        self.upstream = upstream  # None: answer through the chat LLM
        self.llm = llm
        self.splitter = splitter
        self.max_temperature = max_temperature

    def chat_form(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as a Chat Completions body, for keying."""
        raise NotImplementedError

    def answer(self, completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def replay(self, completion: dict[str, Any], body: dict[str, Any]) -> list[Event]:
        raise NotImplementedError

    def reply_from(self, payload: dict[str, Any], latency_ms: float, model: str) -> LLMReply:
        """The upstream's whole answer in the canonical form."""
        raise NotImplementedError

    def key(self, body: dict[str, Any], user: str) -> ChatKey:
        return chat_key(self.splitter, self.chat_form(body), self.max_temperature, user)

    def streamed(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def end_user_of(self, body: dict[str, Any]) -> str | None:
        return named_user(body.get("user"))

    async def call(self, body: dict[str, Any]) -> LLMReply:
        started = time.perf_counter()
        if self.upstream is None:
            payload = self.answer(await self._chat_completion(body), body)
        else:
            payload = await self.upstream.post(self.path, {**body, "stream": False})
        latency_ms = (time.perf_counter() - started) * 1000
        return self.reply_from(payload, latency_ms, str(body.get("model") or ""))

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[Event, None]:
        if self.upstream is None:
            for event in self.replay(await self._chat_completion(body), body):
                yield event
            return
        streamed = {**body, "stream": True}
        async for event in self.upstream.stream(self.path, streamed, ends_with_done=False):
            yield event

    async def _chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        chat: dict[str, Any] = {"messages": self.chat_form(body)["messages"]}
        if body.get("model"):
            chat["model"] = body["model"]
        return (await self.llm.chat(chat)).completion()

    def sse(self, event: Event, body: dict[str, Any]) -> Sse | None:
        """The event with its ``type`` as the SSE ``event:`` name."""
        return {"event": str(event.get("type", "message")), "data": orjson.dumps(event).decode()}

    def stream_end(self) -> list[Sse]:
        return []
