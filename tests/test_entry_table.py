"""The entry table: sorted columns plus recent changes behave as one plain dict would."""

import random

import numpy as np

from index.vectors import entry_table
from index.vectors.entry_table import EntryTable, Slot, exact_hash


def test_it_behaves_as_a_dict_through_merges(monkeypatch: object) -> None:
    # merge early and often, so that every path (columns, recent, dead rows) is exercised
    monkeypatch.setattr(entry_table, "_MIN_MERGE", 7)  # type: ignore[attr-defined]
    table, model = EntryTable(), {}
    exact_of: dict[int, int] = {}  # exact hash -> fid, as the model keeps it
    chooser = random.Random(5)
    for step in range(5000):
        fid = chooser.randrange(1, 400) * 7919  # ids repeat: replacements and removals
        if chooser.random() < 0.6:
            slot = Slot(chooser.randrange(4), step, exact_hash(f"key {chooser.randrange(300)}"))
            table.put(fid, slot)
            if fid in model and exact_of.get(model[fid].exact) == fid:
                del exact_of[model[fid].exact]
            model[fid] = slot
            exact_of[slot.exact] = fid
        else:
            assert table.pop(fid) == model.pop(fid, None)
            exact_of = {h: f for h, f in exact_of.items() if f in model and model[f].exact == h}
        assert len(table) == len(model)
        probe = chooser.randrange(1, 400) * 7919
        assert table.get(probe) == model.get(probe)
        assert (probe in table) == (probe in model)
    columns = table.columns()
    assert sorted(columns.fids.tolist()) == sorted(model)
    for fid, sub, seq, exact in zip(columns.fids, columns.subs, columns.seqs, columns.exacts,
                                    strict=True):  # fmt: skip
        assert model[int(fid)] == Slot(int(sub), int(seq), int(exact))
    # an exact hash finds an entry held under it (the latest, while it is held)
    for slot in model.values():
        found = table.by_exact(slot.exact)
        assert found is not None and model[found].exact == slot.exact
    assert table.by_exact(exact_hash("a key no entry has")) is None


def test_columns_built_whole_answer_without_recent_changes() -> None:
    fids = np.array([30, 10, 20], np.int64)
    table = EntryTable(
        entry_table.Columns(
            fids, np.array([1, 2, 3], np.int32), np.array([7, 8, 9], np.int64),
            np.array([exact_hash("c"), exact_hash("a"), 0], np.int64),
        )
    )  # fmt: skip
    assert table.get(10) == Slot(2, 8, exact_hash("a"))
    assert table.by_exact(exact_hash("c")) == 30
    assert table.by_exact(0) is None  # no exact key is not a key
    assert table.pop(30) == Slot(1, 7, exact_hash("c"))
    assert table.by_exact(exact_hash("c")) is None and len(table) == 2


def test_exact_hash_never_stands_for_no_key() -> None:
    assert exact_hash("") == 0
    assert all(exact_hash(f"dc:x:{{ns}}:{i}") != 0 for i in range(1000))
