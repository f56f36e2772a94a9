"""A replica turns a grown sub-index into HNSW and compacts tombstones by rebuilding from
Redis off the event loop, and keeps answering while it does."""

from collections.abc import Callable

from tests.helpers import CacheService, wait_until


def test_grown_index_becomes_hnsw_and_deletes_are_compacted(
    start_service: Callable[..., CacheService],
) -> None:
    service = start_service(hnsw_min_entries=60, compact_ratio=0.2, drift_check_interval_s=0.3)
    questions = [f"What is the tallest building in city number {i}?" for i in range(120)]
    stored = service.http.post(
        "/v1/entries",
        json={
            "entries": [{"prompt": q, "response": f"tower {i}"} for i, q in enumerate(questions)]
        },
    ).json()["entries"]

    def shape() -> dict[str, int]:
        index: dict[str, int] = service.http.get("/v1/replica").json()["index"]
        return index

    wait_until(lambda: shape()["hnsw_sub_indexes"] == 1, 10, message="HNSW built")
    hit = service.query(questions[42].replace("?", " ?"), cache="only").json()
    assert hit["status"] == "HIT" and hit["response"] == "tower 42"

    for entry in stored[:50]:  # 50 of 120 gone: far past 20% tombstones
        assert service.http.delete(f"/v1/entries/{entry['entry_id']}").status_code == 200
    wait_until(lambda: shape()["stored_vectors"] == 70, 10, message="tombstones compacted")
    assert service.http.get("/v1/replica").json()["entries"] == 70
    # a deleted entry is never served (a near question about another city may still hit)
    assert (
        service.query(questions[10].replace("?", " ?"), cache="only").json()["response"]
        != "tower 10"
    )
    assert (
        service.query(questions[99].replace("?", " ?"), cache="only").json()["response"]
        == "tower 99"
    )
