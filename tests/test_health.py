"""Health, readiness, metrics and the Swagger UI."""

import pytest

from tests.helpers import CacheService


def test_health_ready_metrics_docs(service: CacheService) -> None:
    assert service.http.get("/healthz").json() == {"status": "ok"}
    ready = service.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "ok"
    service.query("What is the capital of France?")
    metrics = service.http.get("/metrics")
    assert metrics.status_code == 200
    assert 'dynacache_requests_total{namespace="default",outcome="miss"} 1.0' in metrics.text
    docs = service.http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()
    spec = service.http.get("/openapi.json").json()
    assert "/v1/query" in spec["paths"] and "/v1/stats" in spec["paths"]


def test_not_ready_index_answers_503_and_falls_back_to_the_redis_mirror(
    service: CacheService,
) -> None:
    stored = service.http.post(
        "/v1/entries",
        json={
            "entries": [
                {"prompt": "What is the capital of France?", "response": "Paris."},
                {"prompt": "How do I bake sourdough bread?", "response": "Slowly."},
            ]
        },
    ).json()
    # Put the replica in the state it has while it loads: no local entries, not ready.
    runtime = service.runtime
    runtime.sync.ready = False
    for entry in stored["entries"]:
        service.on_loop(lambda entry_id=entry["entry_id"]: runtime.index.remove(entry_id))
    try:
        ready = service.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["index"] == "loading from Redis"
        hit = service.query("Tell me the capital of France", cache="only").json()
        assert hit["status"] == "HIT" and hit["response"] == "Paris."
        assert 0 < hit["distance"] < 0.35  # same squared-L2 scale as FAISS
        miss = service.query("Tell me the capital of France", cache="only", threshold=0.05).json()
        assert miss["status"] == "MISS"
        assert abs(miss["distance"] - hit["distance"]) < 1e-4
    finally:
        runtime.sync.ready = True


def test_not_ready_while_the_replica_does_not_follow_the_events(service: CacheService) -> None:
    # the state a replica is in after Redis restarted, until it re-subscribes and catches up
    service.runtime.sync.subscribed = False
    try:
        ready = service.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["events"] == "not subscribed"
    finally:
        service.runtime.sync.subscribed = True
    assert service.http.get("/readyz").status_code == 200


def test_the_llm_mode_is_named_where_an_operator_looks(
    service: CacheService, proxied: CacheService, caplog: pytest.LogCaptureFixture
) -> None:
    simulated = service.http.get("/readyz").json()["llm"]
    assert simulated["mode"] == "simulated" and "DYNACACHE_LLM=openai" in simulated["note"]
    assert service.http.get("/v1/stats").json()["llm"]["mode"] == "simulated"
    real = proxied.http.get("/readyz").json()["llm"]
    # never the key; the address only to the operator (here, open mode's /v1/stats)
    assert real == {"mode": "openai", "model": "fake-model", "price_per_call_usd": 0.002}
    operator = proxied.http.get("/v1/stats").json()["llm"]
    assert operator == {**real, "base_url": proxied.settings.openai_base_url}
    # the start-up log says so at WARNING, once per replica that simulates
    started = caplog.get_records("setup")  # the replicas started as the test was set up
    warned = [r for r in started if r.levelname == "WARNING" and "simulated" in r.message]
    assert len(warned) == 1
