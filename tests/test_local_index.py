import numpy as np
import pytest

from index.keys import new_entry_id
from index.local_index import LocalIndex

DIM = 8


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


@pytest.fixture
def index() -> LocalIndex:
    return LocalIndex(DIM)


def test_search_returns_squared_l2_nearest_first(index: LocalIndex) -> None:
    near, far = new_entry_id(), new_entry_id()
    index.add("ns", "s", near, unit(1, 0.1), seq=1)
    index.add("ns", "s", far, unit(0, 1), seq=2)
    found = index.search("ns", "s", unit(1, 0), k=5)
    assert [c.entry_id for c in found] == [near, far]
    cos = float(unit(1, 0.1) @ unit(1, 0))
    assert found[0].distance == pytest.approx(2 - 2 * cos, abs=1e-6)


def test_namespaces_and_scopes_never_see_each_other(index: LocalIndex) -> None:
    index.add("a", "s", new_entry_id(), unit(1), seq=1)
    index.add("a", "t", new_entry_id(), unit(1), seq=2)
    assert len(index.search("b", "s", unit(1), k=5)) == 0
    assert len(index.search("a", "s", unit(1), k=5)) == 1
    assert index.count_by_namespace() == {"a": 2}


def test_remove_and_replace(index: LocalIndex) -> None:
    entry = new_entry_id()
    index.add("ns", "s", entry, unit(1), seq=1)
    index.add("ns", "s", entry, unit(0, 1), seq=2)  # overwrite keeps one copy
    assert len(index) == 1
    assert index.search("ns", "s", unit(0, 1), k=1)[0].distance == pytest.approx(0, abs=1e-6)
    assert index.remove(entry, seq=3)
    assert index.search("ns", "s", unit(1), k=1) == []
    assert entry not in index


def test_stale_add_after_delete_is_ignored(index: LocalIndex) -> None:
    entry = new_entry_id()
    index.remove(entry, seq=5)
    assert not index.add("ns", "s", entry, unit(1), seq=4)
    assert index.add("ns", "s", entry, unit(1), seq=6)


def test_older_delete_does_not_remove_newer_write(index: LocalIndex) -> None:
    entry = new_entry_id()
    index.add("ns", "s", entry, unit(1), seq=10)
    assert not index.remove(entry, seq=9)
    assert entry in index


def test_flush_drops_older_entries_and_blocks_late_adds(index: LocalIndex) -> None:
    old, late, newer = new_entry_id(), new_entry_id(), new_entry_id()
    index.add("ns", "s", old, unit(1), seq=1)
    index.add("other", "s", new_entry_id(), unit(1), seq=2)
    assert index.flush("ns", seq=3) == 1
    assert not index.add("ns", "s", late, unit(1), seq=2)
    assert index.add("ns", "s", newer, unit(1), seq=4)
    assert index.count_by_namespace() == {"ns": 1, "other": 1}
