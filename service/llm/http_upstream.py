"""One HTTP upstream speaking JSON and server-sent events, with retries: the transport under
every LLM client (OpenAI Chat Completions and Responses, Anthropic Messages).

A JSON call retries 429 and 5xx answers and connection errors with exponential backoff
(honouring a short ``Retry-After``); a timeout is not retried, since the caller already
waited. A stream is not retried: once a chunk is relayed the answer cannot start again.
Upstream trouble is raised as :class:`UpstreamFailed` or :class:`UpstreamTimedOut`.
"""

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson

_RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class UpstreamFailed(Exception):
    """The LLM answered with an error, or with something that is not an answer."""


class UpstreamTimedOut(Exception):
    """The LLM did not answer within the configured timeout."""


class HttpUpstream:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's JSON answer to ``body``."""
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

    async def stream(
        self, path: str, body: dict[str, Any], ends_with_done: bool
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each event's data object, as it arrives. ``ends_with_done``: the stream must end
        with ``data: [DONE]`` (Chat Completions), else it ends when the connection does."""
        try:
            async with self._http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    detail = (await response.aread())[:200].decode(errors="replace")
                    raise UpstreamFailed(f"upstream answered HTTP {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # comments, event names, blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield _event(data)
        except httpx.TimeoutException as error:
            raise UpstreamTimedOut(f"upstream stream stalled ({error!r})") from error
        except httpx.TransportError as error:
            raise UpstreamFailed(f"upstream stream broke: {error!r}") from error
        if ends_with_done:
            raise UpstreamFailed("upstream stream ended without [DONE]")

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        delay = self.backoff_s * 2**attempt
        retry_after = response.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
            delay = max(delay, min(float(retry_after), 10.0))
        return float(delay)

    async def aclose(self) -> None:
        await self._http.aclose()


def _event(data: str) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise UpstreamFailed("upstream stream sent something that is not JSON") from error
    if not isinstance(event, dict):
        raise UpstreamFailed("upstream stream sent something that is not an object")
    problem = event.get("error")
    if (problem and event.get("type") is None) or event.get("type") in ("error", "response.failed"):
        # Chat: {"error": {...}}; Anthropic: {"type": "error", "error": {...}}; Responses:
        # {"type": "error", "message": ...} or response.failed
        detail = problem if isinstance(problem, dict) else {"message": problem or event}
        message = detail.get("message") or event.get("message") or "an error event"
        raise UpstreamFailed(f"upstream stream failed: {message}")
    return event
