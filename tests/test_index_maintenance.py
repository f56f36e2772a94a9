"""A replica turns a grown sub-index into HNSW and compacts tombstones by rebuilding from
Redis off the event loop, and keeps answering while it does."""

import asyncio
from collections.abc import Callable

from index.store.keys import faiss_id
from tests.helpers import CacheService, store_entries, wait_until


def test_grown_index_becomes_hnsw_and_deletes_are_compacted(
    start_service: Callable[..., CacheService],
) -> None:
    service = start_service(hnsw_min_entries=60, compact_ratio=0.2, drift_check_interval_s=0.3)
    questions = [f"What is the tallest building in city number {i}?" for i in range(120)]
    entries = [{"prompt": q, "response": f"tower {i}"} for i, q in enumerate(questions)]
    stored = store_entries(service.http, entries).json()["entries"]

    def shape() -> dict[str, int]:
        index: dict[str, int] = service.http.get("/v1/replica").json()["index"]
        return index

    wait_until(lambda: shape()["hnsw_sub_indexes"] == 1, 10, message="HNSW built")
    hit = service.query(questions[42].replace("?", " ?"), cache="only").json()
    assert hit["status"] == "HIT" and hit["response"] == "tower 42"

    for entry in stored[:50]:  # 50 of 120 gone: far past 20% tombstones
        assert service.http.delete(f"/v1/entries/{entry['entry_id']}").status_code == 200
    # a rebuild may land while the deletes still arrive (those after it stay tombstones,
    # fewer than 20 %): what holds is the bound, 120 stored before any compaction
    wait_until(
        lambda: (
            shape()["stored_vectors"] <= 70 * 1.2
            and service.http.get("/v1/replica").json()["entries"] == 70
        ),
        10,
        message="tombstones compacted",
    )
    # a deleted entry is never served (a near question about another city may still hit)
    assert (
        service.query(questions[10].replace("?", " ?"), cache="only").json()["response"]
        != "tower 10"
    )
    assert (
        service.query(questions[99].replace("?", " ?"), cache="only").json()["response"]
        == "tower 99"
    )


def test_entries_whose_events_a_replica_missed_come_back_through_the_drift_check(
    start_service: Callable[..., CacheService],
) -> None:
    service = start_service(drift_check_interval_s=0.2)
    questions = ["How do I bake sourdough bread?", "What is the capital of France?",
                 "Who painted the Mona Lisa?"]  # fmt: skip
    stored = service.http.post(
        "/v1/entries", json={"entries": [{"prompt": q, "response": "x"} for q in questions]}
    ).json()["entries"]
    runtime = service.runtime
    ids = [entry["entry_id"] for entry in stored]

    def seq_now() -> int:
        seqs = asyncio.run_coroutine_threadsafe(
            runtime.store.feed.seqs_of(["default"]), service.loop
        )
        return seqs.result(10)["default"]

    # held, and every event of these writes applied (a late one would put an entry back)
    written = seq_now()
    wait_until(lambda: runtime.sync.applied.get("default", 0) >= written, message="applied")
    assert all(entry_id in runtime.index for entry_id in ids)
    # events lost: two entries gone from this replica's index while Redis keeps them
    for entry_id in ids[:2]:
        service.on_loop(lambda entry_id=entry_id: runtime.index.remove(entry_id))
    assert len(runtime.index) == 1
    # how the checks between two full counts count: one namespace at a time
    counted = asyncio.run_coroutine_threadsafe(
        runtime.store.search.count_in(["default", "nobody"]), service.loop
    ).result(10)
    assert counted == {"default": 3, "nobody": 0}
    # what the reconcile compares: Redis's ids per namespace, as sorted int64 FAISS ids
    in_redis = asyncio.run_coroutine_threadsafe(
        runtime.store.feed.entry_ids_by_namespace(page_size=2), service.loop
    ).result(10)
    assert list(in_redis) == ["default"]
    assert in_redis["default"].tolist() == sorted(faiss_id(entry_id) for entry_id in ids)
    # Redis counts 3, the replica 1, twice in a row (whichever way it counts): reconciled
    # (both read from this thread while the replica's loop adds them and then counts it)
    wait_until(
        lambda: all(entry_id in runtime.index for entry_id in ids) and runtime.sync.reconciled,
        15,
        message="entries back, by a reconcile",
    )
    hit = service.query("Tell me the capital of France", cache="only").json()
    assert hit["status"] == "HIT"


def test_a_namespace_is_read_since_a_seq_page_by_page_oldest_first(
    start_service: Callable[..., CacheService],
) -> None:
    """Catch-up and an affine replica's load page by seq (an offset costs Redis O(offset))."""
    service = start_service()
    questions = [f"What is the oldest tree in forest number {i}?" for i in range(7)]
    for question in questions:  # one write each: seqs in this order
        service.http.post("/v1/entries", json={"entries": [{"prompt": question, "response": "x"}]})
    runtime = service.runtime

    async def read(since: int) -> list[list[tuple[int, str]]]:
        return [
            [(item.seq, item.entry_id) for item in page]
            async for page in runtime.store.feed.vectors_since("default", since, page_size=3)
        ]

    pages = asyncio.run_coroutine_threadsafe(read(0), service.loop).result(10)
    assert [len(page) for page in pages] == [3, 3, 1]
    seqs = [seq for page in pages for seq, _ in page]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7
    later = asyncio.run_coroutine_threadsafe(read(seqs[3]), service.loop).result(10)
    assert [seq for page in later for seq, _ in page] == seqs[4:]


def test_a_rebuild_asked_for_again_while_one_waits_or_runs_is_done_once(
    start_service: Callable[..., CacheService],
) -> None:
    """At a million entries a rebuild takes minutes and the drift check asks for one every
    30 s: each request used to queue another full rebuild, run one after another after the
    first had made them pointless (a replica reloading Redis for ever, twice the memory)."""
    service = start_service(hnsw_min_entries=60, drift_check_interval_s=3600)
    questions = [f"Which river flows through valley number {i}?" for i in range(120)]
    store_entries(service.http, [{"prompt": q, "response": "x"} for q in questions])
    sync = service.runtime.sync
    wait_until(lambda: len(service.runtime.index) == 120, message="entries held")
    assert service.runtime.index.needs_maintenance()  # a flat sub-index past 60 entries
    before = sync.rebuilds

    def ask_three_times() -> int:
        queue = sync._queue
        assert queue is not None
        waiting = queue.qsize()
        for _ in range(3):
            sync.maintenance.ask("rebuild")
        queued = queue.qsize() - waiting
        # and two stale requests queued as the old drift check did, past the guard
        queue.put_nowait("rebuild")
        queue.put_nowait("rebuild")
        return queued

    assert service.on_loop(ask_three_times) == 1
    wait_until(
        lambda: sync.rebuilds + sync.rebuilds_skipped == before + 3,
        10,
        message="the three requests taken",
    )
    assert sync.rebuilds == before + 1
    assert service.runtime.index.describe()["hnsw_sub_indexes"] == 1
    assert not service.runtime.index.needs_maintenance()
