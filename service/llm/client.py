"""LLM clients called on a miss: a Protocol, the simulated client and an OpenAI-compatible one.

Every client speaks Chat Completions: ``chat`` sends a request body and returns the answer,
``stream_chat`` yields the answer's ``chat.completion.chunk`` objects and returns only after
the upstream's ``[DONE]``; ``complete`` is the one-question form the ``/v1/query`` endpoint
uses. Upstream trouble is raised as :class:`UpstreamFailed` (the API answers 502, or sends a
stream error event) or :class:`UpstreamTimedOut` (504); nothing is stored for a failed call.
"""

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from service.llm.chat_format import chunks_of
from service.settings import Settings

_RETRYABLE_STATUS = {429, 500, 502, 503, 504}


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

    def completion(self) -> dict[str, Any]:
        """What an entry keeps to answer a later Chat Completions HIT."""
        return {
            "model": self.model,
            "message": self.message,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
        }


class UpstreamFailed(Exception):
    """The LLM answered with an error, or with something that is not a completion."""


class UpstreamTimedOut(Exception):
    """The LLM did not answer within the configured timeout."""


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
            "usage": {"prompt_tokens": words, "completion_tokens": words,
                      "total_tokens": 2 * words},
        }  # fmt: skip

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
    """Any OpenAI-compatible Chat Completions endpoint, through httpx.

    Retries 429 and 5xx answers and connection errors with exponential backoff (honouring
    a short ``Retry-After``); a timeout is not retried, since the caller already waited.
    A stream is not retried: once a chunk is relayed the answer cannot start again.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    async def chat(self, body: dict[str, Any]) -> LLMReply:
        body = {**body, "model": body.get("model") or self.model}
        body.pop("stream", None)
        body.pop("stream_options", None)
        started = time.perf_counter()
        payload = await self._post_with_retries("/chat/completions", body)
        return reply_from_completion(payload, (time.perf_counter() - started) * 1000, body["model"])

    async def stream_chat(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        body = {**body, "model": body.get("model") or self.model, "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        try:
            async with self._http.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    detail = (await response.aread())[:200].decode(errors="replace")
                    raise UpstreamFailed(f"upstream answered HTTP {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # comments, event names, blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield _stream_chunk(data)
        except httpx.TimeoutException as error:
            raise UpstreamTimedOut(f"upstream stream stalled ({error!r})") from error
        except httpx.TransportError as error:
            raise UpstreamFailed(f"upstream stream broke: {error!r}") from error
        raise UpstreamFailed("upstream stream ended without [DONE]")

    async def _post_with_retries(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                response = await self._http.post(path, json=body)
            except httpx.TimeoutException as error:
                raise UpstreamTimedOut(f"upstream did not answer in time ({error!r})") from error
            except httpx.TransportError as error:
                if attempt >= self.max_retries:
                    raise UpstreamFailed(f"upstream unreachable: {error!r}") from error
                await asyncio.sleep(self.backoff_s * 2**attempt)
                attempt += 1
                continue
            if response.status_code in _RETRYABLE_STATUS and attempt < self.max_retries:
                await asyncio.sleep(self._retry_delay(response, attempt))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise UpstreamFailed(
                    f"upstream answered HTTP {response.status_code}: {response.text[:200]}"
                )
            try:
                payload = response.json()
            except ValueError as error:
                raise UpstreamFailed("upstream answer is not JSON") from error
            if not isinstance(payload, dict):
                raise UpstreamFailed("upstream answer is not a JSON object")
            return payload

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        delay = self.backoff_s * 2**attempt
        retry_after = response.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
            delay = max(delay, min(float(retry_after), 10.0))
        return float(delay)

    async def aclose(self) -> None:
        await self._http.aclose()


def _stream_chunk(data: str) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise UpstreamFailed("upstream stream sent something that is not JSON") from error
    if not isinstance(chunk, dict):
        raise UpstreamFailed("upstream stream sent something that is not an object")
    if chunk.get("error"):
        problem = chunk["error"]
        message = problem.get("message") if isinstance(problem, dict) else str(problem)
        raise UpstreamFailed(f"upstream stream failed: {message}")
    return chunk


def make_llm_client(settings: Settings) -> LLMClient:
    if settings.llm == "openai":
        return OpenAIChatLLM(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value(),
            model=settings.openai_model,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            backoff_s=settings.llm_retry_backoff_s,
        )
    return SimulatedLLM(settings.sim_latency_ms)
