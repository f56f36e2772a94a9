"""Restart and Redis failure: nothing lost, no hang, no 500."""

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.embedded_redis import EmbeddedRedis
from tests.conftest import make_settings
from tests.helpers import CacheService, wait_until


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, with AOF, that the test may kill and restart."""
    with tempfile.TemporaryDirectory(prefix="dc-own-redis-") as data_dir:
        server = EmbeddedRedis(Path(data_dir), appendonly=True).start()
        yield server
        server.stop()


def test_restarted_service_rebuilds_and_hits(start_service: Callable[..., CacheService]) -> None:
    first = start_service()
    first.query("What is the capital of France?")
    first.query("What is the capital of France?")
    first.stop()  # flushes its counters
    second = start_service()
    assert len(second.runtime.index) == 1
    hit = second.query("Tell me the capital of France").json()
    assert hit["status"] == "HIT"
    # the counters live in Redis: they survived the restart and add up
    wait_until(
        lambda: second.http.get("/v1/stats").json()["requests"] == 3,
        5,
        message=f"stats kept across the restart: {second.http.get('/v1/stats').json()}",
    )
    assert second.http.get("/v1/stats").json()["hits"] == 2


def test_redis_restart_with_aof_keeps_the_cache(own_redis: EmbeddedRedis) -> None:
    service = CacheService(make_settings(own_redis.url)).start()
    try:
        service.query("What is the capital of France?")
        own_redis.stop()
        own_redis.start()
        wait_until(lambda: service.http.get("/readyz").status_code == 200, 20, message="ready")
        assert service.query("What is the capital of France?").json()["status"] == "HIT"
    finally:
        service.stop()


def test_redis_down_passes_through_without_hanging(own_redis: EmbeddedRedis) -> None:
    service = CacheService(make_settings(own_redis.url, sim_latency_ms=10)).start()
    try:
        service.query("What is the capital of France?")
        own_redis.kill()
        # a deadline, not a timing: a hang fails as a read timeout
        response = service.http.post(
            "/v1/query", json={"prompt": "What is the capital of France?"}, timeout=5
        )
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "BYPASS"
        body = response.json()
        assert body["status"] == "BYPASS"
        assert "capital of France" in body["response"]
        chat = {"model": "m", "messages": [{"role": "user", "content": "Capital of France?"}]}
        answer = service.http.post("/v1/chat/completions", json=chat)
        assert (answer.status_code, answer.headers["X-Cache"]) == (200, "BYPASS")
        assert "Capital of France" in answer.json()["choices"][0]["message"]["content"]
        streamed = service.http.post("/v1/chat/completions", json={**chat, "stream": True})
        assert streamed.status_code == 200  # a MISS whose store fails (headers go first)
        assert "Capital" in streamed.text and streamed.text.rstrip().endswith("[DONE]")
        report = {"entry_id": "0123456789abcdef", "prompt": "q", "correct": False}
        assert service.http.post("/v1/feedback", json=report).status_code == 503
        only = service.query("What is the capital of France?", cache="only").json()
        assert only["status"] == "MISS" and only["response"] is None
        ready = service.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"].startswith("unreachable")
        assert service.http.get("/healthz").status_code == 200
        stats = service.http.get("/v1/stats")
        assert stats.status_code == 503
        assert stats.json()["error"]["code"] == "redis_unavailable"
        bulk = service.http.post(
            "/v1/entries", json={"entries": [{"prompt": "q", "response": "a"}]}
        )
        assert bulk.status_code == 503
    finally:
        service.stop()


def test_keys_that_cannot_be_checked_are_refused_with_503(own_redis: EmbeddedRedis) -> None:
    service = CacheService(make_settings(own_redis.url, admin_token="admin-secret")).start()
    try:
        admin = {"Authorization": "Bearer admin-secret"}
        service.http.post("/v1/admin/tenants", headers=admin, json={"namespace": "acme"})
        key = service.http.post("/v1/admin/tenants/acme/keys", headers=admin).json()["key"]
        own_redis.kill()

        def refused() -> bool:
            response = service.http.post(
                "/v1/query",
                headers={"X-API-Key": key},
                json={"prompt": "What is the capital of France?"},
                timeout=3,  # bounded, never a hang: a hang fails as a read timeout
            )
            assert response.status_code in (200, 503)  # 200: the key's 1 s cache, passed through
            return response.status_code == 503

        wait_until(refused, 5, message="503 once the cached key record is stale")
    finally:
        service.stop()
