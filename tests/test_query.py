"""POST /v1/query against a real Redis Stack, through real HTTP."""

from collections.abc import Callable

import numpy as np
import redis

from index.store import keys
from index.store.records import IndexedVector
from service.keying.prompt_key import prompt_key
from tests.helpers import CacheService, wait_until

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Tell me the capital of France"


def entry_count(client: redis.Redis) -> int:
    return len(list(client.scan_iter(match=keys.entry_pattern())))


def test_miss_then_paraphrase_hit(service: CacheService) -> None:
    first = service.query(FRANCE)
    assert first.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    miss = first.json()
    assert miss["status"] == "MISS"
    assert FRANCE in miss["response"]
    assert miss["llm_latency_ms"] is not None
    assert miss["namespace"] == "default"

    second = service.query(FRANCE_PARAPHRASE)
    assert second.headers["X-Cache"] == "HIT"
    hit = second.json()
    assert hit["status"] == "HIT"
    assert hit["response"] == miss["response"]
    assert hit["matched_prompt"] == FRANCE
    assert hit["entry_id"] == miss["entry_id"]
    assert 0 < hit["distance"] < 0.35
    assert abs(hit["similarity"] - (1 - hit["distance"] / 2)) < 1e-9
    assert hit["llm_latency_ms"] is None


def test_unrelated_prompt_is_a_miss(service: CacheService) -> None:
    service.query(FRANCE)
    other = service.query("How do I bake sourdough bread at home?").json()
    assert other["status"] == "MISS"
    assert other["distance"] > 0.35
    assert other["entry_id"] is not None


def test_exact_repeat_hits_without_embedding(service: CacheService) -> None:
    service.query(FRANCE)
    embedded_before = service.runtime.embedder.texts_embedded
    hit = service.query("  what IS the capital\tof   france?  ").json()
    assert hit["status"] == "HIT"
    assert hit["distance"] == 0.0
    assert hit["similarity"] == 1.0
    assert service.runtime.embedder.texts_embedded == embedded_before


def test_threshold_per_request(service: CacheService) -> None:
    service.query(FRANCE)
    strict = service.query(FRANCE_PARAPHRASE, threshold=0.01, cache="only").json()
    assert strict["status"] == "MISS"
    assert strict["response"] is None
    assert strict["distance"] > 0.01
    loose = service.query(FRANCE_PARAPHRASE, threshold=0.5, cache="only").json()
    assert loose["status"] == "HIT"


def test_bypass_neither_looks_up_nor_stores(
    service: CacheService, redis_client: redis.Redis
) -> None:
    service.query(FRANCE)
    bypass = service.query(FRANCE, cache="bypass")
    assert bypass.headers["X-Cache"] == "BYPASS"
    assert bypass.json()["status"] == "BYPASS"
    assert bypass.json()["response"]
    service.query("A question nobody asked before", cache="bypass")
    assert entry_count(redis_client) == 1


def test_refresh_calls_the_llm_and_overwrites(
    service: CacheService, redis_client: redis.Redis
) -> None:
    first = service.query(FRANCE).json()
    refreshed = service.query(FRANCE, cache="refresh").json()
    assert refreshed["status"] == "MISS"
    assert refreshed["llm_latency_ms"] is not None
    assert refreshed["entry_id"] == first["entry_id"]
    assert entry_count(redis_client) == 1
    seq = int(redis_client.hget(keys.entry_key("default", first["entry_id"]), "seq") or 0)
    assert seq == 2
    assert service.query(FRANCE_PARAPHRASE).json()["status"] == "HIT"


def test_only_mode_never_calls_the_llm(service: CacheService, redis_client: redis.Redis) -> None:
    miss = service.query(FRANCE, cache="only")
    assert miss.status_code == 200
    assert miss.json()["status"] == "MISS"
    assert miss.json()["response"] is None
    assert miss.json()["llm_latency_ms"] is None
    assert entry_count(redis_client) == 0
    service.query(FRANCE)
    assert service.query(FRANCE_PARAPHRASE, cache="only").json()["status"] == "HIT"


def test_ttl_sets_redis_expire(service: CacheService, redis_client: redis.Redis) -> None:
    with_ttl = service.query(FRANCE, ttl=120).json()
    forever = service.query("Who wrote Hamlet?", ttl=0).json()
    default = service.query("How tall is Mount Everest?").json()
    assert 0 < redis_client.ttl(keys.entry_key("default", with_ttl["entry_id"])) <= 120
    assert redis_client.ttl(keys.entry_key("default", forever["entry_id"])) == -1
    default_ttl = service.settings.default_ttl_s
    assert (
        default_ttl - 5
        < redis_client.ttl(keys.entry_key("default", default["entry_id"]))
        <= default_ttl
    )


def test_entry_gone_from_redis_is_a_miss_and_dropped_locally(
    service: CacheService, redis_client: redis.Redis
) -> None:
    entry_id = service.query(FRANCE).json()["entry_id"]
    # Remove the hash behind the replica's back: no event, so only the confirm step can tell.
    redis_client.delete(keys.entry_key("default", entry_id))
    assert entry_id in service.runtime.index
    again = service.query(FRANCE_PARAPHRASE).json()
    assert again["status"] == "MISS"
    assert entry_id not in service.runtime.index


def test_different_model_or_context_never_hits(service: CacheService) -> None:
    service.query(FRANCE, model="gpt-a", context="Geography notes")
    assert (
        service.query(FRANCE, model="gpt-b", context="Geography notes").json()["status"] == "MISS"
    )
    assert service.query(FRANCE, model="gpt-a", context="Other notes").json()["status"] == "MISS"
    assert (
        service.query(FRANCE_PARAPHRASE, model="gpt-a", context="Geography notes").json()["status"]
        == "HIT"
    )


def test_stats_are_numbers_and_add_up_across_replicas(
    start_service: Callable[..., CacheService],
) -> None:
    first = start_service(sim_latency_ms=50)
    second = start_service(sim_latency_ms=50)
    first.query(FRANCE)  # miss
    # replicas are eventually consistent (~0.5 ms here): the entry reaches B by its event
    wait_until(lambda: len(second.runtime.index) == 1, message="B has the entry")
    second.query(FRANCE_PARAPHRASE)  # hit
    second.query(FRANCE)  # exact hit
    first.query("Who painted the Mona Lisa?")  # miss

    def settled() -> dict[str, object] | None:
        body = first.http.get("/v1/stats").json()
        return body if body["requests"] == 4 else None

    stats = wait_until(settled, message="4 requests counted")
    assert stats["hits"] == 2 and stats["misses"] == 2
    assert stats["hit_rate"] == 0.5
    assert stats["entries"] == 2
    assert stats["cost_saved_usd"] == 2 * 0.002
    assert stats["avg_miss_latency_ms"] >= 50
    assert 0 < stats["avg_hit_latency_ms"] < stats["avg_miss_latency_ms"]
    # each hit saved its entry's LLM time minus its own latency; the simulated LLM sleeps
    # 50 ms on uvloop, whose timers count whole milliseconds (it can wake up to 1 ms early)
    assert stats["latency_saved_ms"] > 2 * (50 - 1) - 2 * stats["avg_hit_latency_ms"] - 0.01
    for name in (
        "requests",
        "hits",
        "misses",
        "hit_rate",
        "avg_hit_latency_ms",
        "avg_miss_latency_ms",
        "latency_saved_ms",
        "cost_saved_usd",
        "entries",
    ):
        assert isinstance(stats[name], int | float), name
    assert stats["namespaces"]["default"]["requests"] == 4
    per_replica = stats["replicas"]
    assert per_replica[first.settings.replica_id]["requests"] == 2
    assert per_replica[second.settings.replica_id]["requests"] == 2
    assert second.http.get("/v1/stats").json()["requests"] == 4


def test_hits_are_counted_on_the_entry_and_never_recreate_a_deleted_one(
    service: CacheService, redis_client: redis.Redis
) -> None:
    entry_id = service.query(FRANCE).json()["entry_id"]
    key = keys.entry_key("default", entry_id)
    service.query(FRANCE_PARAPHRASE)
    service.query(FRANCE)
    wait_until(lambda: redis_client.hget(key, "hits") == b"2", 5, message="2 hits recorded")
    assert float(redis_client.hget(key, "last_hit") or 0) > 0
    service.query(FRANCE)  # counted in memory...
    assert service.http.delete(f"/v1/entries/{entry_id}").status_code == 200
    wait_until(lambda: service.http.get("/v1/stats").json()["hits"] == 3, 5, message="flushed")
    assert not redis_client.exists(key)  # ...and its late flush did not bring the hash back


def test_an_exact_key_the_index_misremembers_is_not_served(service: CacheService) -> None:
    """The local index knows exact keys by a 64-bit hash; were two to collide, the entry
    read must confirm its own key before it is served as an exact HIT."""
    stored = service.http.post(
        "/v1/entries", json={"entries": [{"prompt": FRANCE, "response": "Paris."}]}
    ).json()["entries"][0]
    runtime = service.runtime
    other = "How many legs does a spider have?"
    asked = prompt_key(runtime.queries.probes.splitter, other, None)
    key = keys.exact_key("default", asked.scope, asked.normalised)
    # what a collision would look like: the other prompt's key leading to the France entry
    vector = np.zeros(runtime.embedder.dim, dtype=np.float32)
    vector[0] = 1
    service.on_loop(
        lambda: runtime.index.add(
            IndexedVector("default", "unused-scope", stored["entry_id"], vector, 10**9, key)
        )
    )
    assert runtime.index.exact_entry(key) == stored["entry_id"]
    answer = service.query(other, cache="only").json()
    assert answer["status"] == "MISS", answer
