"""One HTTP upstream speaking JSON and server-sent events, with retries: the transport under
every LLM client (OpenAI Chat Completions and Responses, Anthropic Messages).

A JSON call retries 429 and 5xx answers and connection errors (tenacity), waiting a random
time up to the exponential backoff ("full jitter": replicas behind one balancer do not
retry in lockstep), and at least what the upstream's ``Retry-After`` asks (seconds or an
HTTP date; at most 10 s); a timeout is not retried, since the caller already waited. A
stream is not retried: once a chunk is relayed the answer cannot start again; its events
are read with httpx-sse (multi-line data, event names and ids as the SSE format has them).
Upstream trouble is raised as :class:`UpstreamFailed` or :class:`UpstreamTimedOut`.
"""

import email.utils
import random
import time
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson
from httpx_sse import SSEError, aconnect_sse
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

_RETRYABLE_STATUS = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 10.0


class UpstreamFailed(Exception):
    """The LLM answered with an error, or with something that is not an answer."""


class UpstreamTimedOut(Exception):
    """The LLM did not answer within the configured timeout."""


class _RetryableAnswer(Exception):
    """An answer worth asking again (429, 5xx); the last one is reported if all are."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after_s(header: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` asks to wait: a number of seconds, or an HTTP date; None
    when absent or unreadable."""
    if not header:
        return None
    text = header.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # not an HTTP date (those are GMT)
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type((_RetryableAnswer, httpx.TransportError)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._send(path, body)
        except _RetryableAnswer as failed:
            response = failed.response  # the last answer, once the retries are spent
        except httpx.TransportError as error:
            raise UpstreamFailed(f"upstream unreachable: {error!r}") from error
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

    async def _send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            response = await self._http.post(path, json=body)
        except httpx.TimeoutException as error:  # not retried: the caller waited already
            raise UpstreamTimedOut(f"upstream did not answer in time ({error!r})") from error
        if response.status_code in _RETRYABLE_STATUS:
            raise _RetryableAnswer(response)
        return response

    def _wait(self, state: RetryCallState) -> float:
        """Full jitter up to the exponential backoff, and at least the ``Retry-After``."""
        jittered = random.uniform(0, self.backoff_s * 2 ** (state.attempt_number - 1))
        failed = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failed, _RetryableAnswer):
            asked = retry_after_s(failed.response.headers.get("retry-after"))
            if asked is not None:
                return max(jittered, min(asked, MAX_RETRY_AFTER_S))
        return jittered

    async def stream(
        self, path: str, body: dict[str, Any], ends_with_done: bool
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each event's data object, as it arrives. ``ends_with_done``: the stream must end
        with ``data: [DONE]`` (Chat Completions), else it ends when the connection does."""
        try:
            async with aconnect_sse(self._http, "POST", path, json=body) as source:
                response = source.response
                if response.status_code >= 400:
                    detail = (await response.aread())[:200].decode(errors="replace")
                    raise UpstreamFailed(f"upstream answered HTTP {response.status_code}: {detail}")
                async for sse in source.aiter_sse():
                    if not sse.data:
                        continue  # an event without data (a keep-alive, a bare name)
                    if sse.data == "[DONE]":
                        return
                    yield _event(sse.data)
        except httpx.TimeoutException as error:
            raise UpstreamTimedOut(f"upstream stream stalled ({error!r})") from error
        except httpx.TransportError as error:
            raise UpstreamFailed(f"upstream stream broke: {error!r}") from error
        except SSEError as error:  # an answer that is not an event stream
            raise UpstreamFailed(f"upstream stream is not server-sent events: {error}") from error
        if ends_with_done:
            raise UpstreamFailed("upstream stream ended without [DONE]")

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
