"""What a client API must say for the proxy to cache it (``service/proxy/api_proxy.py``).

Each API (Chat Completions, Responses, Anthropic Messages) is a *dialect*: how a request is
keyed, how the upstream is asked in that API (whole or streamed), how a streamed answer is
put back together, and how a stored answer is given back in that API's shapes. An entry
keeps one canonical form of the answer, a Chat Completions *completion*
(``{model, message, finish_reason, usage}``), so an answer stored through one API can serve
another when the request is the same (a bare question to the same model).
"""

from collections.abc import AsyncGenerator
from typing import Any, Protocol

from service.keying.chat_key import ChatKey
from service.llm.client import LLMReply

Event = dict[str, Any]  # one event of an upstream stream (its data object)
Sse = dict[str, str]  # one server-sent event as sse-starlette takes it (data, event)


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
