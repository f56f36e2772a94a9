"""Index snapshots on disk (``index/vectors/snapshot.py``) and the frozen index they are read
from: what goes in comes back, and what must not be served is never loaded."""

import logging
from pathlib import Path

import numpy as np
import pytest

from index.store.keys import new_entry_id
from index.store.records import IndexedVector
from index.vectors import snapshot
from index.vectors.local_index import LocalIndex
from index.vectors.snapshot import SnapshotIdentity
from index.vectors.sub_index import IndexShape

DIM = 16
IDENTITY = SnapshotIdentity("deployment-a", "onnx:model.onnx:1", DIM)
SHAPE = IndexShape(hnsw_min_entries=40)


def vectors(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def filled() -> tuple[LocalIndex, list[str], np.ndarray]:
    """Two namespaces: a flat scope of 10 and an HNSW one of 60 with a tombstone."""
    index = LocalIndex(DIM, SHAPE, maintain_inline=True)
    rows, ids = vectors(70, seed=1), [new_entry_id() for _ in range(70)]
    index.add_many(
        IndexedVector("a" if i < 10 else "b", "s", ids[i], rows[i], seq=i + 1, exact_key=f"x{i}")
        for i in range(70)
    )
    index.remove(ids[20], seq=71)  # a tombstone in the HNSW sub-index
    return index, ids, rows


def test_a_snapshot_gives_back_the_index_it_was_made_of(tmp_path: Path) -> None:
    index, ids, rows = filled()
    written = snapshot.save(index, {"a": 10, "b": 71}, IDENTITY, tmp_path)
    assert written == 69
    loaded = snapshot.load(tmp_path, IDENTITY, SHAPE)
    assert loaded is not None
    assert loaded.seqs == {"a": 10, "b": 71} and loaded.entries == 69
    restored = loaded.index
    assert restored.count_by_namespace() == {"a": 10, "b": 59}
    assert restored.describe()["hnsw_sub_indexes"] == 1
    for i in (0, 9, 30, 69):
        ns = "a" if i < 10 else "b"
        assert restored.search(ns, "s", rows[i], k=1)[0].entry_id == ids[i]
        assert restored.exact_entry(f"x{i}") == ids[i]
        assert restored.holds(ids[i], i + 1)
    assert ids[20] not in restored
    assert all(c.entry_id != ids[20] for c in restored.search("b", "s", rows[20], k=5))
    assert restored.exact_entry("x20") is None


@pytest.mark.parametrize(
    ("identity", "reason"),
    [
        (SnapshotIdentity("deployment-b", IDENTITY.embedder, DIM), "deployment"),
        (SnapshotIdentity(IDENTITY.deployment, "onnx-int8:model-int8.onnx:2", DIM), "embedder"),
    ],
)
def test_a_foreign_snapshot_is_not_loaded(
    tmp_path: Path, identity: SnapshotIdentity, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot.save(filled()[0], {"a": 10}, IDENTITY, tmp_path)
    with caplog.at_level(logging.WARNING):
        assert snapshot.load(tmp_path, identity, SHAPE) is None
    assert "ignored" in caplog.text and reason in caplog.text


def test_a_corrupt_or_torn_snapshot_is_not_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot.save(filled()[0], {"a": 10}, IDENTITY, tmp_path)
    current = tmp_path / snapshot.CURRENT
    vectors_file = sorted(current.glob("*.faiss"))[-1]
    data = bytearray(vectors_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    vectors_file.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert snapshot.load(tmp_path, IDENTITY, SHAPE) is None
    assert "checksum" in caplog.text
    (current / "0.npz").unlink()  # a file gone
    assert snapshot.load(tmp_path, IDENTITY, SHAPE) is None


def test_a_new_snapshot_replaces_the_old_one_whole(tmp_path: Path) -> None:
    index = filled()[0]
    snapshot.save(index, {"a": 10, "b": 71}, IDENTITY, tmp_path)
    index.flush("a", seq=11)
    snapshot.save(index, {"a": 11, "b": 71}, IDENTITY, tmp_path)
    loaded = snapshot.load(tmp_path, IDENTITY, SHAPE)
    assert loaded is not None and loaded.seqs["a"] == 11
    assert loaded.index.count_by_namespace() == {"b": 59}
    assert [p.name for p in tmp_path.iterdir()] == [snapshot.CURRENT]  # nothing left behind


def test_a_frozen_index_keeps_changes_for_its_thaw_in_order() -> None:
    index, ids, rows = filled()
    index.freeze()
    fresh = new_entry_id()
    index.add(IndexedVector("a", "s", fresh, rows[0], seq=80))
    index.remove(ids[1], seq=81)
    index.remove(fresh, seq=82)  # after its own add: it must end up gone
    assert fresh not in index and ids[1] in index  # nothing changed while frozen
    assert index.search("a", "s", rows[1], k=1)[0].entry_id == ids[1]  # searches go on
    index.thaw()
    assert fresh not in index and ids[1] not in index
    assert not index.frozen
