"""LLM clients called on a miss: a Protocol, the simulated client and an OpenAI-compatible one.

Upstream trouble is raised as :class:`UpstreamFailed` (the API answers 502) or
:class:`UpstreamTimedOut` (504); nothing is stored for a failed call.
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from service.settings import Settings

_RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class LLMReply:
    text: str
    latency_ms: float
    model: str


class UpstreamFailed(Exception):
    """The LLM answered with an error, or with something that is not a completion."""


class UpstreamTimedOut(Exception):
    """The LLM did not answer within the configured timeout."""


class LLMClient(Protocol):
    async def complete(self, prompt: str, model: str | None) -> LLMReply: ...

    async def aclose(self) -> None: ...


class SimulatedLLM:
    """Deterministic answers that name the prompt, after a configurable delay."""

    def __init__(self, latency_ms: float, model: str = "simulated") -> None:
        self.latency_ms = latency_ms
        self.model = model

    async def complete(self, prompt: str, model: str | None) -> LLMReply:
        started = time.perf_counter()
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        text = f"[simulated answer] You asked: {prompt}"
        return LLMReply(text, (time.perf_counter() - started) * 1000, model or self.model)

    async def aclose(self) -> None:
        return None


class OpenAIChatLLM:
    """Any OpenAI-compatible Chat Completions endpoint, through httpx.

    Retries 429 and 5xx answers and connection errors with exponential backoff (honouring
    a short ``Retry-After``); a timeout is not retried, since the caller already waited.
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

    async def complete(self, prompt: str, model: str | None) -> LLMReply:
        body = {"model": model or self.model, "messages": [{"role": "user", "content": prompt}]}
        started = time.perf_counter()
        payload = await self._post_with_retries("/chat/completions", body)
        try:
            text = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as error:
            raise UpstreamFailed("upstream answer has no choices[0].message.content") from error
        if not isinstance(text, str):
            raise UpstreamFailed("upstream answer content is not text")
        latency_ms = (time.perf_counter() - started) * 1000
        return LLMReply(text, latency_ms, str(payload.get("model") or body["model"]))

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
