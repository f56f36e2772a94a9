"""The OpenAI-compatible client against a real fake upstream on 127.0.0.1."""

import email.utils
from collections.abc import Callable

import httpx
import orjson
import redis
from tenacity import RetryCallState

from index.store import keys
from service.llm.http_upstream import HttpUpstream, _RetryableAnswer, retry_after_s
from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService


def stored(client: redis.Redis) -> int:
    return len(list(client.scan_iter(match=keys.entry_pattern())))


def test_miss_goes_upstream_then_hits(proxied: CacheService, upstream: FakeUpstream) -> None:
    miss = proxied.query("What is the capital of France?").json()
    assert miss["status"] == "MISS"
    assert miss["response"] == "Upstream says: What is the capital of France?"
    assert upstream.requests[0]["model"] == "fake-model"
    assert upstream.headers[0]["authorization"] == "Bearer sk-test-key"
    assert proxied.query("Tell me the capital of France").json()["status"] == "HIT"
    assert len(upstream.requests) == 1
    proxied.query("What is the speed of light?", model="other-model")
    assert upstream.requests[1]["model"] == "other-model"


def test_retries_5xx_and_429_then_succeeds(proxied: CacheService, upstream: FakeUpstream) -> None:
    upstream.plan.extend(["503", "429"])
    response = proxied.query("What is the capital of France?")
    assert response.status_code == 200
    assert response.json()["status"] == "MISS"
    assert len(upstream.requests) == 3


def test_persistent_failure_is_502_and_stores_nothing(
    proxied: CacheService, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    upstream.plan.extend(["500", "500", "500"])
    response = proxied.query("What is the capital of France?")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "500" in error["message"]
    assert "sk-test-key" not in response.text
    assert len(upstream.requests) == 3  # one try and two retries
    assert stored(redis_client) == 0


def test_client_error_is_not_retried(proxied: CacheService, upstream: FakeUpstream) -> None:
    upstream.plan.append("400")
    assert proxied.query("What is the capital of France?").status_code == 502
    assert len(upstream.requests) == 1


def test_not_a_completion_is_502(
    proxied: CacheService, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    upstream.plan.append("garbage")
    response = proxied.query("What is the capital of France?")
    assert response.status_code == 502
    assert stored(redis_client) == 0


def test_slow_upstream_is_504_and_stores_nothing(
    proxied: CacheService, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    upstream.plan.append("slow:3")
    response = proxied.query("What is the capital of France?")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert stored(redis_client) == 0
    assert proxied.http.get("/v1/stats").json()["misses"] == 0


def test_unreachable_upstream_is_502(start_service: Callable[..., CacheService]) -> None:
    from service.embedded_redis import free_port

    service = start_service(
        llm="openai",
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        llm_max_retries=1,
        llm_retry_backoff_s=0.01,
    )
    response = service.query("What is the capital of France?")
    assert response.status_code == 502
    assert "unreachable" in response.json()["error"]["message"]


def test_a_stream_in_the_whole_sse_format_is_read(
    proxied: CacheService, upstream: FakeUpstream
) -> None:
    """Data over several lines, ids and comments (httpx-sse): the answer arrives whole."""
    upstream.plan.append("multiline")
    question = [{"role": "user", "content": "What is the capital of France?"}]
    body = {"model": "fake-model", "stream": True, "messages": question}
    streamed = proxied.http.post("/v1/chat/completions", json=body)
    assert streamed.status_code == 200 and streamed.headers["x-cache"] == "MISS"
    assert "Upstream says: What is the capital of France?" in "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for line in streamed.text.splitlines() if line.startswith("data: {")
        for chunk in [orjson.loads(line[6:])] if chunk["choices"]
    )  # fmt: skip
    # kept whole: the question is now served from the cache (same model, same scope)
    hit = proxied.query("Tell me the capital of France", model="fake-model").json()
    assert hit["status"] == "HIT" and len(upstream.requests) == 1


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_s("3") == 3.0 and retry_after_s("1.5") == 1.5
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    now = 1_800_000_000.0
    assert retry_after_s(email.utils.formatdate(now + 5, usegmt=True), now) == 5.0
    assert retry_after_s(email.utils.formatdate(now - 5, usegmt=True), now) == 0.0


def test_retries_wait_with_full_jitter_and_at_least_what_retry_after_asks() -> None:
    upstream = HttpUpstream("http://127.0.0.1:9", {}, 1.0, 3, backoff_s=1.0)

    def waited(attempt: int, retry_after: str | None = None) -> float:
        headers = {"retry-after": retry_after} if retry_after else {}
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        state.set_exception(
            (_RetryableAnswer, _RetryableAnswer(httpx.Response(503, headers=headers)), None)
        )
        return upstream._wait(state)

    third = [waited(3) for _ in range(200)]
    assert all(0 <= w <= 4 for w in third) and max(third) - min(third) > 1  # spread, not fixed
    assert all(waited(1, "2") >= 2 for _ in range(50))  # Retry-After is a floor
    assert waited(1, "600") == 10.0  # capped
