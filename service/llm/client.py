"""LLM clients called on a miss: a Protocol, the simulated client and an OpenAI-compatible one.

Every client speaks Chat Completions: ``chat`` sends a request body and returns the answer,
``stream_chat`` yields the answer's ``chat.completion.chunk`` objects and returns only after
the upstream's ``[DONE]``; ``complete`` is the one-question form the ``/v1/query`` endpoint
uses. Upstream trouble is raised as :class:`UpstreamFailed` (the API answers 502, or sends a
stream error event) or :class:`UpstreamTimedOut` (504); nothing is stored for a failed call.
"""

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from service.llm.chat_format import chunks_of
from service.llm.http_upstream import HttpUpstream, UpstreamFailed, UpstreamTimedOut
from service.settings import Settings

__all__ = ["LLMClient", "LLMReply", "Produce", "UpstreamFailed", "UpstreamTimedOut", "complete"]


@dataclass(frozen=True)
class LLMReply:
    """One answer of the LLM, as the cache stores it."""

    text: str  # the message's text ("" for a tool-call-only answer)
    latency_ms: float
    model: str
    message: dict[str, Any]  # the assistant message (role, content, tool_calls, ...)
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = None
    payload: dict[str, Any] | None = None  # the upstream's whole answer, served on a MISS
    # False for an answer the canonical form cannot hold (a Responses or Messages answer
    # with tool calls): served, not kept
    storable: bool = True

    def completion(self) -> dict[str, Any]:
        """What an entry keeps to answer a later Chat Completions HIT."""
        return {
            "model": self.model,
            "message": self.message,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
        }


# one upstream request, ready to send (again): a MISS's call, which an audit of a HIT
# replays as it stands
Produce = Callable[[], Awaitable[LLMReply]]


class LLMClient(Protocol):
    async def chat(self, body: dict[str, Any]) -> LLMReply: ...

    def stream_chat(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]: ...

    async def aclose(self) -> None: ...


async def complete(llm: LLMClient, prompt: str, model: str | None) -> LLMReply:
    """Ask one question (``model`` None: the client's default model)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}]}
    if model:
        body["model"] = model
    return await llm.chat(body)


def reply_from_completion(payload: Any, latency_ms: float, model: str) -> LLMReply:
    """Read a Chat Completions answer; :class:`UpstreamFailed` if it is not one."""
    try:
        choice = payload["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as error:
        raise UpstreamFailed("upstream answer has no choices[0].message") from error
    if not isinstance(message, dict):
        raise UpstreamFailed("upstream answer's message is not an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise UpstreamFailed("upstream answer content is not text")
    if content is None and not message.get("tool_calls"):
        raise UpstreamFailed("upstream answer has neither content nor tool calls")
    usage = payload.get("usage")
    return LLMReply(
        text=content or "",
        latency_ms=latency_ms,
        model=str(payload.get("model") or model),
        message=message,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        usage=usage if isinstance(usage, dict) else None,
        payload=payload,
    )


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content)
            return str(content or "")
    return ""


class SimulatedLLM:
    """Deterministic answers that name the question, after a configurable delay."""

    def __init__(self, latency_ms: float, model: str = "simulated") -> None:
        self.latency_ms = latency_ms
        self.model = model

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        text = f"[simulated answer] You asked: {last_user_text(body)}"
        words = len(text.split())
        return {
            "id": f"chatcmpl-sim-{time.time_ns():x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": words,
                "completion_tokens": words,
                "total_tokens": 2 * words,
            },
        }

    async def chat(self, body: dict[str, Any]) -> LLMReply:
        started = time.perf_counter()
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        payload = self._answer(body)
        return reply_from_completion(payload, (time.perf_counter() - started) * 1000, self.model)

    async def stream_chat(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        answer = self._answer(body)
        completion = reply_from_completion(answer, 0.0, self.model).completion()
        for chunk in chunks_of(answer["id"], answer["model"], completion, include_usage=True):
            yield chunk

    async def aclose(self) -> None:
        return None


class OpenAIChatLLM:
    """Any OpenAI-compatible Chat Completions endpoint (``service/llm/http_upstream.py``:
    retries, timeouts, streams)."""

    def __init__(self, upstream: HttpUpstream, model: str) -> None:
        self.upstream = upstream
        self.model = model

    async def chat(self, body: dict[str, Any]) -> LLMReply:
        body = {**body, "model": body.get("model") or self.model}
        body.pop("stream", None)
        body.pop("stream_options", None)
        started = time.perf_counter()
        payload = await self.upstream.post("/chat/completions", body)
        return reply_from_completion(payload, (time.perf_counter() - started) * 1000, body["model"])

    async def stream_chat(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        body = {
            **body,
            "model": body.get("model") or self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async for chunk in self.upstream.stream("/chat/completions", body, ends_with_done=True):
            yield chunk

    async def aclose(self) -> None:
        await self.upstream.aclose()


def make_llm_client(settings: Settings) -> LLMClient:
    if settings.llm == "openai":
        return OpenAIChatLLM(openai_upstream(settings), settings.openai_model)
    return SimulatedLLM(settings.sim_latency_ms)


def openai_upstream(settings: Settings) -> HttpUpstream:
    key = settings.openai_api_key.get_secret_value()
    return HttpUpstream(
        settings.openai_base_url,
        {"Authorization": f"Bearer {key}"} if key else {},
        settings.llm_timeout_s,
        settings.llm_max_retries,
        settings.llm_retry_backoff_s,
    )


def anthropic_upstream(settings: Settings) -> HttpUpstream | None:
    """The Anthropic Messages upstream, when one is configured."""
    if not settings.anthropic_base_url:
        return None
    headers = {"anthropic-version": settings.anthropic_version}
    key = settings.anthropic_api_key.get_secret_value()
    if key:
        headers["x-api-key"] = key
    return HttpUpstream(
        settings.anthropic_base_url,
        headers,
        settings.llm_timeout_s,
        settings.llm_max_retries,
        settings.llm_retry_backoff_s,
    )


SIMULATED_NOTE = (
    "answers are simulated (made up, for trying the cache without a provider): set "
    "DYNACACHE_LLM=openai with DYNACACHE_OPENAI_BASE_URL (OpenAI, vLLM, Ollama, LiteLLM) "
    "and DYNACACHE_OPENAI_API_KEY for a real one"
)


def describe_llm(settings: Settings, operator: bool = False) -> dict[str, Any]:
    """Which LLM answers misses (``/readyz``, ``/v1/stats``): simulated, or the upstream's
    default model, and for the ``operator`` (admin token, open mode) its address (never
    its key: a tenant or a health check has no business knowing where it is)."""
    # what the savings figures assume a call costs (DYNACACHE_PRICE_PER_CALL_USD)
    price = {"price_per_call_usd": settings.price_per_call_usd}
    if settings.llm == "simulated":
        return {"mode": "simulated", "note": SIMULATED_NOTE, **price}
    address = {"base_url": settings.openai_base_url} if operator else {}
    return {"mode": "openai", **address, "model": settings.openai_model, **price}
