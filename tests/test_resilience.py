"""Restart and Redis failure: nothing lost, no hang, no 500."""

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from service.embedded_redis import EmbeddedRedis
from tests.conftest import ON_CLUSTER, make_settings
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


def test_known_keys_keep_working_through_an_outage_and_unknown_ones_are_refused(
    own_redis: EmbeddedRedis,
) -> None:
    # no key cache: every request asks Redis, so the outage path is taken at once
    settings = make_settings(own_redis.url, admin_token="admin-secret", key_cache_s=0)
    service = CacheService(settings).start()
    try:
        admin = {"Authorization": "Bearer admin-secret"}
        tenant = {"namespace": "acme", "settings": {"rate_limit_per_s": 5}}
        service.http.post("/v1/admin/tenants", headers=admin, json=tenant)
        known = service.http.post("/v1/admin/tenants/acme/keys", headers=admin).json()["key"]
        never_used = service.http.post("/v1/admin/tenants/acme/keys", headers=admin).json()["key"]
        question = {"prompt": "What is the capital of France?"}
        first = service.http.post("/v1/query", headers={"X-API-Key": known}, json=question)
        assert first.json()["status"] == "MISS"
        own_redis.kill()
        for _ in range(3):  # more than one request: not a cache of one second
            during = service.http.post("/v1/query", headers={"X-API-Key": known}, json=question,
                                       timeout=5)  # fmt: skip
            assert (during.status_code, during.json()["status"]) == (200, "BYPASS")
        chat = {"model": "m", "messages": [{"role": "user", "content": "Capital of France?"}]}
        answer = service.http.post("/v1/chat/completions", headers={"X-API-Key": known},
                                   json=chat, timeout=5)  # fmt: skip
        assert answer.status_code == 200
        unknown = service.http.post("/v1/query", headers={"X-API-Key": never_used},
                                    json=question, timeout=5)  # fmt: skip
        assert unknown.status_code == 503  # cannot be checked: refused, never let in
        forged = service.http.post("/v1/query", headers={"X-API-Key": "dc_forged"},
                                   json=question, timeout=5)  # fmt: skip
        assert forged.status_code == 503
        # the admin API answers 503 (not 500) on every route while Redis is away
        for method, path in (("GET", "/v1/admin/tenants"), ("POST", "/v1/admin/tenants"),
                             ("GET", "/v1/admin/tenants/acme/keys"),
                             ("POST", "/v1/admin/tenants/acme/keys"),
                             ("PUT", "/v1/admin/tenants/acme/settings"),
                             ("DELETE", "/v1/admin/keys/0123456789abcdef"),
                             ("DELETE", "/v1/admin/tenants/acme/entries")):  # fmt: skip
            body = {"namespace": "beta"} if method == "POST" and path.endswith("tenants") else {}
            answer = service.http.request(method, path, headers=admin, json=body, timeout=5)
            assert answer.status_code == 503, (method, path, answer.status_code)
            assert answer.json()["error"]["code"] == "redis_unavailable"
    finally:
        service.stop()


def test_a_bulk_write_that_fails_partway_says_exactly_which_entries_were_stored(
    own_redis: EmbeddedRedis,
) -> None:
    # out of memory is the fault here: a slow answer on a busy machine (0.5 s by default)
    # must not open the breaker instead
    service = CacheService(make_settings(own_redis.url, redis_timeout_s=5)).start()
    client = redis.Redis(port=own_redis.port)
    try:
        entries = [{"prompt": f"What is fact number {i} about the ocean?", "response": f"Fact {i}."}
                   for i in range(600)]  # fmt: skip
        # Redis runs out of memory partway through the batch (writes refused, reads fine).
        # Two batches first: one allocates the search index's first block of vectors (a
        # one-off jump that used to eat a fixed allowance whole: nothing stored at all), the
        # next measures what an entry costs; the allowance is then half the batch's cost.
        warm_ids: set[str] = set()
        used_after: list[int] = []
        for topic in ("mountains", "rivers"):
            warm_up = [{"prompt": f"What is fact number {i} about the {topic}?", "response": "-"}
                       for i in range(100)]  # fmt: skip
            reply = service.http.post("/v1/entries", json={"entries": warm_up}, timeout=30)
            assert reply.status_code == 201, reply.text[:300]
            warm_ids |= {row["entry_id"] for row in reply.json()["entries"]}
            used_after.append(int(client.info("memory")["used_memory"]))
        used = used_after[-1]
        per_entry = max(1, (used_after[1] - used_after[0]) // 100)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", used + per_entry * len(entries) // 2)
        partial = service.http.post("/v1/entries", json={"entries": entries}, timeout=30)
        assert partial.status_code == 503, partial.text[:300]
        body = partial.json()
        assert body["error"]["code"] == "partly_stored"
        stored = {row["index"]: row["entry_id"] for row in body["stored"]}
        assert stored and body["failed"], "some stored, some not"
        assert sorted([*stored, *body["failed"]]) == list(range(len(entries)))
        in_redis = {key.decode().rsplit(":", 1)[1] for key in client.scan_iter("dc:e:*")}
        assert in_redis == set(stored.values()) | warm_ids  # exactly those, and no others
        for index, entry_id in stored.items():
            prompt = client.hget(f"dc:e:{{default}}:{entry_id}", "prompt")
            assert prompt.decode() == entries[index]["prompt"]
        # sending the batch again once Redis has room stores the rest, duplicating nothing
        client.config_set("maxmemory", 0)
        again = service.http.post("/v1/entries", json={"entries": entries}, timeout=30)
        assert again.status_code == 201, again.text
        ids = [row["entry_id"] for row in again.json()["entries"]]
        assert all(ids[index] == entry_id for index, entry_id in stored.items())
        assert sum(1 for _ in client.scan_iter("dc:e:*")) == len(entries) + len(warm_ids)
    finally:
        client.close()
        service.stop()


def test_copies_of_one_prompt_in_a_batch_are_one_entry(service: CacheService) -> None:
    entries = [{"prompt": "How do I reset my password?", "response": f"version {i}"}
               for i in range(50)]  # fmt: skip
    stored = service.http.post("/v1/entries", json={"entries": entries})
    assert stored.status_code == 201, stored.text
    ids = {row["entry_id"] for row in stored.json()["entries"]}
    assert len(ids) == 1
    hit = service.query("How do I reset my password?").json()
    assert hit["response"] == "version 49"  # the last copy, as writes one after another


def test_a_frozen_redis_costs_a_request_one_timeout_at_most(own_redis: EmbeddedRedis) -> None:
    """SIGSTOP: connections stay open and nothing answers. A request with keys on makes
    several Redis calls (its key, its settings, its rate limit, the lookup); each used to
    wait its own timeout, and redis-py retried each three times (four waits of 0.5 s)."""
    settings = make_settings(own_redis.url, admin_token="admin-secret", key_cache_s=0,
                             redis_timeout_s=0.5, sim_latency_ms=0)  # fmt: skip
    service = CacheService(settings).start()
    try:
        admin = {"Authorization": "Bearer admin-secret"}
        tenant = {"namespace": "acme", "settings": {"rate_limit_per_s": 100}}
        service.http.post("/v1/admin/tenants", headers=admin, json=tenant)
        key = service.http.post("/v1/admin/tenants/acme/keys", headers=admin).json()["key"]
        question = {"prompt": "What is the capital of France?"}
        assert service.http.post("/v1/query", headers={"X-API-Key": key}, json=question).is_success
        own_redis.freeze()
        for _ in range(3):
            # the deadline is the assertion: one 0.5 s timeout fits, two do not
            answer = service.http.post("/v1/query", headers={"X-API-Key": key}, json=question,
                                       timeout=0.9)  # fmt: skip
            assert (answer.status_code, answer.json()["status"]) == (200, "BYPASS")
        assert service.http.get("/healthz", timeout=0.5).status_code == 200
        own_redis.thaw()

        def served_from_the_cache() -> bool:
            answer = service.http.post("/v1/query", headers={"X-API-Key": key}, json=question)
            return bool(answer.json()["status"] == "HIT")

        wait_until(served_from_the_cache, 10, message="the cache back after the thaw")
    finally:
        own_redis.thaw()
        service.stop()


def test_background_work_that_waits_longer_than_a_query_timeout_does_not_make_queries_pass_through(
    own_redis: EmbeddedRedis,
) -> None:
    """Redis frozen for three query timeouts while only the background talks to it (the
    telemetry flush of the last lookups, drift checks every 0.2 s). Those commands used to
    share the request path's client: the first to time out opened its breaker, and the
    query after the thaw passed through (BYPASS) for a second. Now they have their own
    client and wait; the request path's breaker stays closed."""
    settings = make_settings(own_redis.url, redis_timeout_s=0.3, drift_check_interval_s=0.2,
                             stats_flush_interval_s=0.2)  # fmt: skip
    service = CacheService(settings).start()
    question = "What is the capital of France?"
    try:
        assert service.query(question).json()["status"] == "MISS"
        assert service.query(question).json()["status"] == "HIT"  # its stats still to flush
        own_redis.freeze()
        time.sleep(1.0)  # the fault itself: no request is made while Redis is frozen
        own_redis.thaw()
        assert service.query(question).json()["status"] == "HIT"
        opened = service.http.get("/v1/replica").json()["redis_breaker_opened"]
        assert opened == {"requests": 0, "background": 0}
        wait_until(
            lambda: service.http.get("/v1/stats").json()["requests"] == 3,
            5,
            message="the flush that waited out the freeze counted its lookups",
        )
    finally:
        own_redis.thaw()
        service.stop()


@pytest.mark.skipif(ON_CLUSTER, reason="the one index of a single Redis, by its name")
def test_a_search_index_dropped_under_the_replica_is_made_again(
    start_service: Callable[..., CacheService], redis_client: redis.Redis
) -> None:
    """A FLUSHALL or an operator's FT.DROPINDEX takes the Redis mirror away while replicas
    run: a lookup that falls back to it is a MISS, not an error, and the index is back."""
    service = start_service()
    assert service.query("What is the capital of Peru?").json()["status"] == "MISS"
    redis_client.execute_command("FT.DROPINDEX", "dc:idx")
    service.runtime.sync.ready = False  # loading: lookups go to the Redis mirror
    try:
        answer = service.query("Which city is the capital of Peru?", cache="only")
        assert answer.status_code == 200 and answer.json()["status"] == "MISS"
    finally:
        service.runtime.sync.ready = True

    def indexed() -> int:  # made again, and the entry indexed in the background
        reply = redis_client.execute_command("FT.SEARCH", "dc:idx", "*", "NOCONTENT")
        return int(reply[b"total_results"] if isinstance(reply, dict) else reply[0])

    wait_until(lambda: indexed() == 1, 10, message="the index made again, its entry in it")
