"""Freshness and capacity: TTL policies, LRU/LFU eviction on every replica, Cache-Control."""

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from index.store import keys
from tests.conftest import ON_CLUSTER
from tests.helpers import CacheService, wait_until

FRANCE = "What is the capital of France?"


def status(service: CacheService, prompt: str = FRANCE, **fields: Any) -> str:
    return str(service.query(prompt, cache="only", **fields).json()["status"])


def remaining_ttl(client: redis.Redis, entry_id: str) -> int:
    return int(client.ttl(keys.entry_key("default", entry_id)))


def hits_counted(client: redis.Redis, entry_id: str) -> int:
    return int(client.hget(keys.entry_key("default", entry_id), "hits") or 0)


def pttl(client: redis.Redis, entry_id: str) -> int:
    return int(client.pttl(keys.entry_key("default", entry_id)))


def test_fixed_ttl_expires_even_when_hit(service: CacheService, redis_client: redis.Redis) -> None:
    entry_id = service.query(FRANCE, ttl=2, ttl_policy="fixed").json()["entry_id"]
    before = pttl(redis_client, entry_id)
    assert 0 < before <= 2000
    assert status(service) == "HIT"
    wait_until(lambda: hits_counted(redis_client, entry_id) == 1, 5, message="the hit applied")
    assert pttl(redis_client, entry_id) <= before  # the hit did not extend it
    wait_until(lambda: status(service) == "MISS", 6, interval_s=0.1, message="expired")


def test_sliding_ttl_lives_while_hit_and_expires_when_not(
    service: CacheService, redis_client: redis.Redis
) -> None:
    entry_id = service.query(FRANCE, ttl=2, ttl_policy="sliding").json()["entry_id"]
    for hit in range(1, 4):  # three times: let it age below 1 s, then a hit slides it back
        wait_until(lambda: 0 < pttl(redis_client, entry_id) < 1000, 5, message="aged")
        assert status(service) == "HIT"
        wait_until(
            lambda n=hit: hits_counted(redis_client, entry_id) == n, 5, message="hit applied"
        )
        assert pttl(redis_client, entry_id) > 1000  # the whole 2 s again, less the flush
    # watched in Redis: a lookup would itself be a hit and slide the expiry again
    key = keys.entry_key("default", entry_id)
    wait_until(
        lambda: not redis_client.exists(key),
        6,
        interval_s=0.1,
        message="expired once no longer hit",
    )
    assert status(service, "Tell me the capital of France") == "MISS"


def test_adaptive_ttl_grows_with_hits_up_to_the_cap(
    start_service: Callable[..., CacheService], redis_client: redis.Redis
) -> None:
    service = start_service(ttl_max_s=5)
    entry_id = service.query(FRANCE, ttl=2, ttl_policy="adaptive").json()["entry_id"]
    assert remaining_ttl(redis_client, entry_id) <= 2
    service.query(FRANCE, cache="only")  # 1 hit: 2 × (1 + log2 2) = 4 s
    wait_until(lambda: remaining_ttl(redis_client, entry_id) > 2, 3, message="TTL grown")
    assert 3 <= remaining_ttl(redis_client, entry_id) <= 4
    for _ in range(3):  # 4 hits: 2 × (1 + log2 5) ≈ 6.6 s, capped at 5
        service.query(FRANCE, cache="only")
    wait_until(
        lambda: redis_client.hget(keys.entry_key("default", entry_id), "hits") == b"4",
        3,
        message="4 hits applied",
    )
    assert 4 <= remaining_ttl(redis_client, entry_id) <= 5
    xkey = redis_client.hget(keys.entry_key("default", entry_id), "xkey")
    assert 4 <= int(redis_client.ttl(xkey)) <= 5  # the exact pointer follows


def store_numbered(service: CacheService, start: int, count: int) -> list[str]:
    response = service.http.post(
        "/v1/entries",
        json={
            "entries": [
                {
                    "prompt": f"Fact number {i}: what is the weather code {i * 7919}?",
                    "response": str(i),
                }
                for i in range(start, start + count)
            ]
        },
    )
    response.raise_for_status()
    return [entry["entry_id"] for entry in response.json()["entries"]]


def hit_all(service: CacheService, start: int, count: int) -> None:
    for i in range(start, start + count):
        assert status(service, f"Fact number {i}: what is the weather code {i * 7919}?") == "HIT"


def redis_ids(client: redis.Redis) -> set[str]:
    return {key.decode().rsplit(":", 1)[1] for key in client.scan_iter(match="dc:e:*")}


def capacity_scenario(
    start_service: Callable[..., CacheService], client: redis.Redis, eviction: str
) -> tuple[list[str], set[str], list[CacheService]]:
    first = start_service(max_entries_per_namespace=100, eviction=eviction)
    second = start_service(max_entries_per_namespace=100, eviction=eviction)
    older = store_numbered(first, 0, 50)
    newer = store_numbered(first, 50, 50)
    for _ in range(3):  # the older half: hit often, but earlier
        hit_all(first, 0, 50)
    wait_until(
        lambda: client.hget(keys.entry_key("default", older[-1]), "hits") == b"3",
        5,
        message="older hits applied",
    )
    hit_all(second, 50, 50)  # the newer half: hit once, later (through the other replica)
    wait_until(
        lambda: client.hget(keys.entry_key("default", newer[-1]), "hits") == b"1",
        5,
        message="newer hits applied",
    )
    store_numbered(first, 100, 50)
    ids = redis_ids(client)
    return older + newer, ids, [first, second]


def assert_replicas_match(replicas: list[CacheService], ids: set[str]) -> None:
    for replica in replicas:
        wait_until(
            lambda r=replica: (
                set(r.http.get("/v1/replica", params={"ids": True}).json()["entry_ids"]) == ids
            ),
            5,
            message="replica equals Redis",
        )


def test_lru_capacity_evicts_the_least_recently_used_everywhere(
    start_service: Callable[..., CacheService], redis_client: redis.Redis
) -> None:
    before, ids, replicas = capacity_scenario(start_service, redis_client, "lru")
    assert len(ids) == 100
    assert not ids & set(before[:50])  # hit often but long ago: gone
    assert set(before[50:]) <= ids
    assert_replicas_match(replicas, ids)
    stats = replicas[1].http.get("/v1/stats").json()
    wait_until(
        lambda: (
            replicas[1].http.get("/v1/stats").json()["namespaces"]["default"]["evictions"] == 50
        ),
        5,
        message="50 evictions counted",
    )
    assert stats["entries"] == 100


def test_lfu_capacity_evicts_the_least_frequently_used_everywhere(
    start_service: Callable[..., CacheService], redis_client: redis.Redis
) -> None:
    first = start_service(max_entries_per_namespace=100, eviction="lfu")
    second = start_service(max_entries_per_namespace=100, eviction="lfu")
    often = store_numbered(first, 0, 50)
    for _ in range(3):
        hit_all(second, 0, 50)
    wait_until(
        lambda: redis_client.hget(keys.entry_key("default", often[-1]), "hits") == b"3",
        5,
        message="hits applied",
    )
    never = store_numbered(first, 50, 50)  # used less, though more recently than `often`
    store_numbered(second, 100, 50)
    ids = redis_ids(redis_client)
    assert len(ids) == 100
    assert set(often) <= ids  # LRU would have dropped these; LFU keeps them
    assert not ids & set(never)
    assert_replicas_match([first, second], ids)


def test_cache_control_directives(service: CacheService, redis_client: redis.Redis) -> None:
    first = service.query(FRANCE).json()
    hit = service.http.post("/v1/query", json={"prompt": FRANCE})
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["X-Cache-Entry"] == first["entry_id"]
    assert int(hit.headers["Age"]) >= 0
    body = hit.json()
    assert body["created"] <= time.time() and body["expires_at"] > time.time()

    def ask(header: str, prompt: str = FRANCE) -> dict[str, Any]:
        answer: dict[str, Any] = service.http.post(
            "/v1/query", json={"prompt": prompt}, headers={"Cache-Control": header}
        ).json()
        return answer

    refreshed = ask("no-cache")
    assert refreshed["status"] == "MISS" and refreshed["llm_latency_ms"] is not None
    assert refreshed["entry_id"] == first["entry_id"]

    unstored = ask("no-store", "Who painted the Mona Lisa?")
    assert unstored["status"] == "MISS" and unstored["response"] and unstored["entry_id"] is None
    assert len(redis_ids(redis_client)) == 1
    assert ask("no-store")["status"] == "HIT"  # no-store may still be served from the cache

    assert ask("max-age=3600")["status"] == "HIT"
    wait_until(
        lambda: (
            time.time()
            - float(redis_client.hget(keys.entry_key("default", first["entry_id"]), "created") or 0)
            > 1.05
        ),
        3,
        message="the entry is over a second old",
    )
    # the exact repeat (the check for an entry stored by a call in flight served the stale
    # one its own lookup had refused), then a paraphrase (semantic): neither is served
    assert ask("max-age=1")["status"] == "MISS"
    assert ask("max-age=0", "Tell me the capital of France")["status"] == "MISS"


def test_delete_entries_older_than(service: CacheService, redis_client: redis.Redis) -> None:
    old = service.query(FRANCE).json()["entry_id"]
    wait_until(
        lambda: (
            time.time() - float(redis_client.hget(keys.entry_key("default", old), "created") or 0)
            > 1.05
        ),
        3,
        message="a second passes",
    )
    young = service.query("Who wrote Hamlet?").json()["entry_id"]
    deleted = service.http.delete("/v1/entries", params={"older_than": 1})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 1}
    assert redis_ids(redis_client) == {young}
    assert old not in service.runtime.index
    assert service.http.delete("/v1/entries", params={"older_than": -1}).status_code == 422


@pytest.mark.skipif(ON_CLUSTER, reason="one search index per shard on a cluster")
def test_a_hit_does_not_reindex_its_entry(service: CacheService, redis_client: redis.Redis) -> None:
    """A HIT's counters (hits, last_hit, TTL) change no indexed field: the search module,
    loaded with PARTIAL_INDEXED_DOCS, must leave the entry's vector where it is (re-indexing
    it cost ~1 ms of Redis CPU per served entry, a new document id each time)."""
    entry_id = service.query(FRANCE, ttl_policy="sliding").json()["entry_id"]
    documents_before = int(redis_client.ft(keys.SEARCH_INDEX).info()["max_doc_id"])
    for _ in range(3):
        assert status(service) == "HIT"
    wait_until(lambda: hits_counted(redis_client, entry_id) == 3, 5, message="the hits applied")
    assert int(redis_client.ft(keys.SEARCH_INDEX).info()["max_doc_id"]) == documents_before
