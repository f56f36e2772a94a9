import numpy as np
import pytest

from index.store.keys import new_entry_id
from index.store.records import IndexedVector
from index.vectors.local_index import LocalIndex
from index.vectors.sub_index import IndexShape

DIM = 8


def put(index: LocalIndex, ns: str, scope: str, entry: str, vector: np.ndarray, seq: int) -> bool:
    return index.add(IndexedVector(ns, scope, entry, vector, seq))


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


@pytest.fixture
def index() -> LocalIndex:
    return LocalIndex(DIM)


def test_search_returns_squared_l2_nearest_first(index: LocalIndex) -> None:
    near, far = new_entry_id(), new_entry_id()
    put(index, "ns", "s", near, unit(1, 0.1), seq=1)
    put(index, "ns", "s", far, unit(0, 1), seq=2)
    found = index.search("ns", "s", unit(1, 0), k=5)
    assert [c.entry_id for c in found] == [near, far]
    cos = float(unit(1, 0.1) @ unit(1, 0))
    assert found[0].distance == pytest.approx(2 - 2 * cos, abs=1e-6)


def test_namespaces_and_scopes_never_see_each_other(index: LocalIndex) -> None:
    put(index, "a", "s", new_entry_id(), unit(1), seq=1)
    put(index, "a", "t", new_entry_id(), unit(1), seq=2)
    assert len(index.search("b", "s", unit(1), k=5)) == 0
    assert len(index.search("a", "s", unit(1), k=5)) == 1
    assert index.count_by_namespace() == {"a": 2}


def test_remove_and_replace(index: LocalIndex) -> None:
    entry = new_entry_id()
    put(index, "ns", "s", entry, unit(1), seq=1)
    put(index, "ns", "s", entry, unit(0, 1), seq=2)  # overwrite keeps one copy
    assert len(index) == 1
    assert index.search("ns", "s", unit(0, 1), k=1)[0].distance == pytest.approx(0, abs=1e-6)
    assert index.remove(entry, seq=3)
    assert index.search("ns", "s", unit(1), k=1) == []
    assert entry not in index


def test_stale_add_after_delete_is_ignored(index: LocalIndex) -> None:
    entry = new_entry_id()
    index.remove(entry, seq=5)
    assert not put(index, "ns", "s", entry, unit(1), seq=4)
    assert put(index, "ns", "s", entry, unit(1), seq=6)


def test_older_delete_does_not_remove_newer_write(index: LocalIndex) -> None:
    entry = new_entry_id()
    put(index, "ns", "s", entry, unit(1), seq=10)
    assert not index.remove(entry, seq=9)
    assert entry in index


def test_flush_drops_older_entries_and_blocks_late_adds(index: LocalIndex) -> None:
    old, late, newer = new_entry_id(), new_entry_id(), new_entry_id()
    put(index, "ns", "s", old, unit(1), seq=1)
    put(index, "other", "s", new_entry_id(), unit(1), seq=2)
    assert index.flush("ns", seq=3) == 1
    assert not put(index, "ns", "s", late, unit(1), seq=2)
    assert put(index, "ns", "s", newer, unit(1), seq=4)
    assert index.count_by_namespace() == {"ns": 1, "other": 1}


SMALL_HNSW = IndexShape(hnsw_min_entries=40, compact_ratio=0.25)


def random_unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_becomes_hnsw_past_its_size_and_still_finds_exact_neighbours() -> None:
    index = LocalIndex(DIM, SMALL_HNSW, maintain_inline=True)
    rows = random_unit_rows(100, seed=1)
    ids = [new_entry_id() for _ in rows]
    index.add_many(
        IndexedVector("ns", "s", entry, row, i)
        for i, (entry, row) in enumerate(zip(ids, rows, strict=True))
    )
    assert index.describe()["hnsw_sub_indexes"] == 1
    for i in (0, 17, 99):
        found = index.search("ns", "s", rows[i], k=1)
        assert found[0].entry_id == ids[i] and found[0].distance == pytest.approx(0, abs=1e-5)


def test_hnsw_deletes_are_skipped_and_churn_does_not_grow_memory() -> None:
    index = LocalIndex(DIM, SMALL_HNSW, maintain_inline=True)
    live: dict[str, np.ndarray] = {}
    seq = 0
    for round_number in range(20):  # 20 rounds of 30 adds and 30 deletes over ~100 live
        for row in random_unit_rows(30, seed=round_number):
            seq += 1
            entry = new_entry_id()
            put(index, "ns", "s", entry, row, seq)
            live[entry] = row
        for entry in list(live)[: max(0, len(live) - 100)]:
            seq += 1
            index.remove(entry, seq)
            del live[entry]
        assert index.stored_vectors() <= len(live) * (1 + SMALL_HNSW.compact_ratio) + 1
    assert len(index) == len(live)
    assert index.describe()["compactions"] > 1
    for entry, row in list(live.items())[:10]:
        assert index.search("ns", "s", row, k=1)[0].entry_id == entry
    gone = random_unit_rows(1, seed=99)[0]
    removed = new_entry_id()
    put(index, "ns", "s", removed, gone, seq + 1)
    index.remove(removed, seq + 2)
    assert all(c.entry_id != removed for c in index.search("ns", "s", gone, k=5))


def test_the_live_index_asks_for_maintenance_instead_of_blocking() -> None:
    index = LocalIndex(DIM, SMALL_HNSW)  # live: never rebuilds FAISS structures inline
    rows = random_unit_rows(60, seed=4)
    ids = [new_entry_id() for _ in rows]
    index.add_many(
        IndexedVector("ns", "s", entry, row, i)
        for i, (entry, row) in enumerate(zip(ids, rows, strict=True))
    )
    assert index.describe()["hnsw_sub_indexes"] == 0
    assert index.needs_maintenance()  # 60 entries outgrew flat search at 40
    assert index.search("ns", "s", rows[3], k=1)[0].entry_id == ids[3]


def test_exact_keys_are_known_locally_and_forgotten_with_their_entry(index: LocalIndex) -> None:
    entry = new_entry_id()
    index.add(IndexedVector("ns", "s", entry, unit(1), 1, exact_key="dc:x:{ns}:abc"))
    assert index.exact_entry("dc:x:{ns}:abc") == entry
    assert index.exact_entry("dc:x:{ns}:other") is None
    index.remove(entry, seq=2)
    assert index.exact_entry("dc:x:{ns}:abc") is None
