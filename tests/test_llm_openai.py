"""The OpenAI-compatible client against a real fake upstream on 127.0.0.1."""

from collections.abc import Callable

import redis

from index.store import keys
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
