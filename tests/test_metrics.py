"""What an operator reads: Prometheus metrics, latency percentiles in /v1/stats, insights."""

import math
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.engine.metrics import OTHER_NAMESPACES, NamespaceLabels
from service.engine.telemetry import (
    LATENCY_BUCKETS_MS,
    latency_bucket,
    merged_extremes,
    percentiles,
    widen,
)
from tests.helpers import CacheService, wait_until

ADMIN = "metrics-admin-token"


def samples(service: CacheService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by (name, sorted labels)."""
    text = service.http.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


# -- rules of one module -------------------------------------------------------------------


def test_namespace_labels_are_bounded() -> None:
    labels = NamespaceLabels(limit=2)
    assert [labels("a"), labels("b"), labels("c"), labels("a")] == ["a", "b", OTHER_NAMESPACES, "a"]
    assert labels.bounded({"a": 1, "b": 2, "c": 3, "d": 4}) == {
        "a": 1, "b": 2, OTHER_NAMESPACES: 7,
    }  # fmt: skip


def test_percentiles_interpolate_inside_a_bucket_like_prometheus() -> None:
    counts = [0.0] * len(LATENCY_BUCKETS_MS)
    counts[LATENCY_BUCKETS_MS.index(10)] = 100  # all between 7.5 and 10 ms
    found = percentiles(counts, (0.5, 0.99))
    assert found == {"p50": 8.75, "p99": 9.975}
    assert percentiles([0.0] * len(counts), (0.5,)) == {"p50": 0.0}
    counts[-1] = 1e6  # nearly all past the last bound: that bound is the answer
    assert percentiles(counts, (0.5,)) == {"p50": 10000.0}
    assert latency_bucket("hit", 0.3) == "hit_ms_le_1"
    assert latency_bucket("miss", 2.5) == "miss_ms_le_2.5"
    assert latency_bucket("miss", 1e9) == "miss_ms_le_inf"
    assert math.isinf(LATENCY_BUCKETS_MS[-1])


def test_percentiles_stay_between_the_fastest_and_slowest_lookup_seen() -> None:
    counts = [0.0] * len(LATENCY_BUCKETS_MS)
    counts[LATENCY_BUCKETS_MS.index(1500)] = 50  # MISSes that all took 1,004-1,012 ms
    assert percentiles(counts, (0.5, 0.99)) == {"p50": 1250.0, "p99": 1495.0}  # unbounded
    assert percentiles(counts, (0.5, 0.99), (1004.0, 1012.0)) == {"p50": 1012.0, "p99": 1012.0}
    counts[LATENCY_BUCKETS_MS.index(1500)] = 1  # one lookup: every percentile is that one
    assert percentiles(counts, (0.5,), (1011.5, 1011.5)) == {"p50": 1011.5}
    extremes: dict[str, float] = {}
    for latency_ms in (7.0, 3.0, 5.0):
        widen(extremes, "hit", latency_ms)
    assert extremes == {"hit_min": 3.0, "hit_max": 7.0}
    other = {"hit_min": 4.0, "hit_max": 9.0, "miss_min": 900.0, "miss_max": 1100.0}
    assert merged_extremes(extremes, other) == {
        "hit_min": 3.0, "hit_max": 9.0, "miss_min": 900.0, "miss_max": 1100.0,
    }  # fmt: skip


# -- over HTTP -----------------------------------------------------------------------------


@pytest.fixture
def keyed(start_service: Callable[..., CacheService]) -> tuple[CacheService, dict[str, dict]]:
    """A replica with keys on, three tenants, labels for two namespaces only, and an LLM
    that takes 30 ms (so a HIT saves time)."""
    service = start_service(admin_token=ADMIN, metrics_max_namespaces=2, sim_latency_ms=30)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    headers: dict[str, dict] = {"admin": admin}
    for ns in ("alpha", "beta", "gamma"):
        created = service.http.post("/v1/admin/tenants", json={"namespace": ns}, headers=admin)
        assert created.status_code == 201, created.text
        key = service.http.post(f"/v1/admin/tenants/{ns}/keys", headers=admin).json()["key"]
        headers[ns] = {"Authorization": f"Bearer {key}"}
    return service, headers


def test_metrics_are_labelled_by_namespace_and_outcome_and_bounded(
    keyed: tuple[CacheService, dict[str, dict]],
) -> None:
    service, headers = keyed
    post = service.http.post

    def ask(ns: str, prompt: str) -> str:
        answer = post("/v1/query", json={"prompt": prompt}, headers=headers[ns])
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    assert ask("alpha", "How do I reset my router password?") == "MISS"
    assert ask("alpha", "How can I reset the password of my router?") == "HIT"
    assert ask("beta", "What is the boiling point of water?") == "MISS"
    assert ask("gamma", "Who painted the Mona Lisa?") == "MISS"
    assert post("/v1/query", json={"prompt": "Who painted the Mona Lisa?", "cache": "bypass"},
                headers=headers["gamma"]).json()["status"] == "BYPASS"  # fmt: skip

    found = samples(service)
    assert value(found, "dynacache_requests_total", namespace="alpha", outcome="hit") == 1
    assert value(found, "dynacache_requests_total", namespace="alpha", outcome="miss") == 1
    assert value(found, "dynacache_requests_total", namespace="beta", outcome="miss") == 1
    # the third namespace is past the limit of two labels
    assert value(found, "dynacache_requests_total", namespace=OTHER_NAMESPACES,
                 outcome="miss") == 1  # fmt: skip
    assert value(found, "dynacache_requests_total", namespace=OTHER_NAMESPACES,
                 outcome="bypass") == 1  # fmt: skip
    assert not any(name == "dynacache_requests_total" and ("namespace", "gamma") in labels
                   for name, labels in found)  # fmt: skip
    assert not any(name.endswith("_created") for name, _ in found)
    # a stage histogram per stage the lookups went through
    for stage in ("embed", "search", "redis", "llm"):
        assert value(found, "dynacache_stage_seconds_count", stage=stage) >= 1, stage
    assert value(found, "dynacache_stage_seconds_count", stage="llm") == 4  # 3 misses, 1 bypass
    assert value(found, "dynacache_hit_similarity_count") == 1
    # how close lookups came: the HIT's distance; the misses so far had no candidate at all
    assert value(found, "dynacache_nearest_distance_count", outcome="hit") == 1
    assert value(found, "dynacache_nearest_distance_count", outcome="miss") == 0
    assert ask("alpha", "What is the capital of Peru?") == "MISS"  # the router entry: far
    nearest = samples(service)
    assert value(nearest, "dynacache_nearest_distance_count", outcome="miss") == 1
    assert value(nearest, "dynacache_nearest_distance_sum", outcome="miss") > 0.35
    assert value(nearest, "dynacache_nearest_distance_bucket", outcome="miss", le="0.35") == 0
    assert value(found, "dynacache_cost_saved_usd_total", namespace="alpha") == pytest.approx(
        service.settings.price_per_call_usd
    )
    assert value(found, "dynacache_latency_saved_seconds_total", namespace="alpha") > 0
    # what the replica holds, read at the scrape
    assert value(found, "dynacache_entries", namespace="alpha") == 1
    assert value(found, "dynacache_entries", namespace="beta") == 1
    assert value(found, "dynacache_entries", namespace=OTHER_NAMESPACES) == 1
    assert value(found, "dynacache_index_sub_indexes", kind="flat") == 3
    assert value(found, "dynacache_sync_subscribed") == 1
    assert value(found, "dynacache_sync_events_behind") == 0
    assert value(found, "dynacache_sync_last_seq") >= 3
    assert value(found, "dynacache_sync_seconds_since_event") >= 0
    assert value(found, "dynacache_decision_stage", stage="static") == 1


def test_evictions_are_counted_per_namespace(
    keyed: tuple[CacheService, dict[str, dict]],
) -> None:
    service, headers = keyed
    limited = service.http.put(
        "/v1/admin/tenants/alpha/settings", json={"max_entries": 2}, headers=headers["admin"]
    )
    assert limited.status_code == 200, limited.text
    entries = [{"prompt": f"Question number {word}?", "response": word}
               for word in ("one", "two", "three", "four", "five")]  # fmt: skip
    for entry in entries:  # one at a time: each write makes room for itself
        stored = service.http.post("/v1/entries", json={"entries": [entry]},
                                   headers=headers["alpha"])  # fmt: skip
        assert stored.status_code == 201, stored.text
    found = samples(service)
    assert value(found, "dynacache_evictions_total", namespace="alpha") == 3
    stats = service.http.get("/v1/stats", headers=headers["alpha"]).json()
    assert stats["evictions"] == 3


def test_stats_report_latency_percentiles_and_insights_show_near_misses(
    service: CacheService,
) -> None:
    stored = service.query("How do I reset my router password?")
    assert stored.json()["status"] == "MISS"
    hit_ms = []
    for _ in range(3):
        answer = service.query("How can I reset the password of my router?").json()
        assert answer["status"] == "HIT"
        hit_ms.append(answer["latency_ms"])
    # near, but outside the threshold: a miss an operator may want to see
    near = service.query("Which Wi-Fi router should I buy?").json()
    assert near["status"] == "MISS" and near["distance"] is not None
    miss_ms = [stored.json()["latency_ms"], near["latency_ms"]]

    def flushed() -> dict | None:
        stats = service.http.get("/v1/stats").json()
        return stats if stats["hits"] == 3 and stats["misses"] == 2 else None

    stats = wait_until(flushed, message="stats flushed")
    hit = stats["latency_ms"]["hit"]
    # interpolated in their buckets, held between the fastest and slowest (3 decimals kept)
    assert min(hit_ms) - 1e-3 <= hit["p50"] <= hit["p95"] <= hit["p99"] <= max(hit_ms) + 1e-3
    miss = stats["latency_ms"]["miss"]
    assert min(miss_ms) - 1e-3 <= miss["p50"] <= miss["p99"] <= max(miss_ms) + 1e-3
    replica = stats["replicas"][service.settings.replica_id]["latency_ms"]
    assert replica == stats["latency_ms"]  # its own extremes bound it the same way
    # the namespace's own figures carry the same percentiles
    assert stats["namespaces"]["default"]["latency_ms"] == stats["latency_ms"]

    def near_misses_recorded() -> dict | None:
        seen = service.http.get("/v1/insights").json()["namespaces"]["default"]
        return seen if seen["closest_misses"] else None

    seen = wait_until(near_misses_recorded, message="near misses flushed")
    closest = seen["closest_misses"][0]
    assert closest["prompt"] == "Which Wi-Fi router should I buy?"
    assert closest["nearest_prompt"] == "How do I reset my router password?"
    assert closest["distance"] == pytest.approx(near["distance"], abs=1e-3)
    served = seen["most_served"]
    assert served[0]["prompt"] == "How do I reset my router password?"
    assert served[0]["hits"] == 3


def test_a_tenant_sees_only_its_own_insights(
    keyed: tuple[CacheService, dict[str, dict]],
) -> None:
    service, headers = keyed
    for ns in ("alpha", "beta"):
        service.http.post("/v1/query", json={"prompt": f"What is {ns}?"}, headers=headers[ns])
    own = service.http.get("/v1/insights", headers=headers["alpha"]).json()["namespaces"]
    assert list(own) == ["alpha"]
    everyone = service.http.get("/v1/insights", headers=headers["admin"]).json()["namespaces"]
    assert {"alpha", "beta"} <= set(everyone)
    assert httpx.get(f"{service.url}/v1/insights").status_code == 401


def server_timing(header: str) -> dict[str, float]:
    return {
        part.split(";")[0].strip(): float(part.split("dur=")[1])
        for part in header.split(",")
    }  # fmt: skip


def test_every_answer_says_where_its_time_went(service: CacheService) -> None:
    miss = service.query("How do I reset my router password?")
    stages = server_timing(miss.headers["Server-Timing"])
    assert {"embed", "search", "redis", "llm", "total"} <= set(stages)
    assert stages["total"] >= stages["embed"] > 0
    hit = service.query("How can I reset the password of my router?")
    stages = server_timing(hit.headers["Server-Timing"])
    assert {"embed", "search", "redis", "total"} <= set(stages) and "llm" not in stages
    assert sum(ms for stage, ms in stages.items() if stage != "total") <= stages["total"] + 0.01
    exact = service.query("How do I reset my router password?")
    assert set(server_timing(exact.headers["Server-Timing"])) == {"redis", "total"}
    chat = {"model": "m", "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]}
    answered = service.http.post("/v1/chat/completions", json=chat)
    assert "llm" in server_timing(answered.headers["Server-Timing"])


def _query(service: CacheService, headers: dict[str, str], prompt: str) -> dict:
    answer = service.http.post("/v1/query", json={"prompt": prompt}, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict = answer.json()
    return body


@pytest.mark.parametrize(
    ("keys_on", "show", "reader", "shown"),
    [(False, False, "open", False), (True, False, "admin", False),
     (True, False, "tenant", False), (True, True, "admin", True), (True, True, "tenant", False)],
    ids=["open-mode", "admin", "tenant", "admin-shown", "tenant-when-shown"],
)  # fmt: skip
def test_personal_prompts_are_hidden_in_insights_and_the_dashboard(
    start_service: Callable[..., CacheService], keys_on: bool, show: bool, reader: str,
    shown: bool,
) -> None:  # fmt: skip
    service = start_service(admin_token=ADMIN if keys_on else None, show_personal_prompts=show)
    admin, ns, tenant = {"Authorization": f"Bearer {ADMIN}"}, "default", {}
    if keys_on:
        ns = "alpha"
        assert service.http.post("/v1/admin/tenants", json={"namespace": ns},
                                 headers=admin).status_code == 201  # fmt: skip
        key = service.http.post(f"/v1/admin/tenants/{ns}/keys", headers=admin).json()["key"]
        tenant = {"Authorization": f"Bearer {key}"}
    # one end user's own questions: a MISS, a HIT, and a near miss
    alice = {**tenant, "X-Cache-Scope": "user", "X-User-Id": "alice"}
    assert _query(service, alice, "How do I reset my router password?")["status"] == "MISS"
    assert _query(service, alice, "How can I reset the password of my router?")["status"] == "HIT"
    assert _query(service, alice, "Which Wi-Fi router should I buy?")["distance"] is not None
    # a shared question, served once: its prompt is everyone's to see
    assert _query(service, tenant, "What is the capital of France?")["status"] == "MISS"
    assert _query(service, tenant, "Tell me the capital of France")["status"] == "HIT"
    readers = {"open": {}, "admin": admin, "tenant": tenant}

    def seen() -> dict | None:
        read = service.http.get("/v1/insights", headers=readers[reader]).json()["namespaces"]
        view = read.get(ns, {})
        return view if view.get("closest_misses") and len(view["most_served"]) == 2 else None

    views = [wait_until(seen, message="near misses and hits flushed")]
    if reader != "tenant":  # the dashboard is the operator's
        views.append(service.http.get("/v1/dashboard", headers=readers[reader]).json()[
            "insights"][ns])  # fmt: skip
    for view in views:
        personal = [*view["closest_misses"],
                    *(e for e in view["most_served"] if e["personal"])]  # fmt: skip
        assert len(personal) == 2 and all(row["personal"] for row in personal)
        prompts = [row["prompt"] for row in personal]
        prompts += [row["nearest_prompt"] for row in view["closest_misses"]]
        if shown:
            assert all("router" in prompt for prompt in prompts)
        else:
            assert prompts == [None, None, None] and "router" not in str(view)
        shared = [(e["prompt"], e["hits"]) for e in view["most_served"] if not e["personal"]]
        assert shared == [("What is the capital of France?", 1)]  # shown as before


def test_health_and_a_tenants_stats_do_not_show_the_upstream(
    start_service: Callable[..., CacheService],
) -> None:
    service = start_service(
        admin_token=ADMIN, llm="openai", openai_base_url="http://127.0.0.1:9/secret-gateway/v1"
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert service.http.post("/v1/admin/tenants", json={"namespace": "alpha"},
                             headers=admin).status_code == 201  # fmt: skip
    key = service.http.post("/v1/admin/tenants/alpha/keys", headers=admin).json()["key"]
    ready = service.http.get("/readyz")
    assert ready.json()["llm"]["mode"] == "openai" and "secret-gateway" not in ready.text
    tenant_stats = service.http.get("/v1/stats", headers={"Authorization": f"Bearer {key}"})
    assert tenant_stats.status_code == 200 and "secret-gateway" not in tenant_stats.text
    # the operator still sees where misses go
    operator_stats = service.http.get("/v1/stats", headers=admin).json()
    assert operator_stats["llm"]["base_url"] == "http://127.0.0.1:9/secret-gateway/v1"


@pytest.mark.parametrize(
    ("required", "reader", "status"),
    [(False, None, 200), (True, None, 401), (True, "tenant", 403), (True, "admin", 200)],
    ids=["open-by-default", "no-key", "tenant-key", "admin-token"],
)
def test_metrics_can_require_the_admin_token(
    start_service: Callable[..., CacheService], required: bool, reader: str | None, status: int
) -> None:
    service = start_service(admin_token=ADMIN, metrics_require_admin=required)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert service.http.post("/v1/admin/tenants", json={"namespace": "alpha"},
                             headers=admin).status_code == 201  # fmt: skip
    key = service.http.post("/v1/admin/tenants/alpha/keys", headers=admin).json()["key"]
    readers = {None: {}, "tenant": {"Authorization": f"Bearer {key}"}, "admin": admin}
    scraped = service.http.get("/metrics", headers=readers[reader])
    assert scraped.status_code == status, scraped.text
    if status == 200:
        assert "dynacache_requests_total" in scraped.text
