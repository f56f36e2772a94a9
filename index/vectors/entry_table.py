"""What a replica knows of each entry it holds (its sub-index, write seq and exact-match key),
in sorted numpy columns rather than Python objects (docs/design.md, "Why it is built so").

Changes since the last merge live in small dicts and are merged in, vectorised, once they
pass a share of the columns. The exact key is kept as a 64-bit hash, which can collide: a
caller that serves on it confirms the key on the entry it reads (``query_path.py``). Not
thread-safe, like the index that owns it.
"""

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

_MIN_MERGE = 50_000  # recent changes kept as dicts before they are merged into the columns
_MERGE_SHARE = 0.25  # ... or this share of the columns, whichever is more


def exact_hash(exact_key: str) -> int:
    """A signed 64-bit hash of an exact-match key; 0 stands for "no exact key"."""
    if not exact_key:
        return 0
    value = int.from_bytes(
        hashlib.blake2b(exact_key.encode(), digest_size=8).digest(), "little", signed=True
    )
    return value or 1


class Slot(NamedTuple):
    sub: int  # the sub-index's code (``LocalIndex`` maps codes to (namespace, scope))
    seq: int
    exact: int  # exact_hash of its exact key, 0 for none


@dataclass
class Columns:
    """Every entry held, one row each (in no particular order)."""

    fids: np.ndarray  # int64
    subs: np.ndarray  # int32
    seqs: np.ndarray  # int64
    exacts: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.fids)

    def where(self, mask: np.ndarray) -> "Columns":
        return Columns(self.fids[mask], self.subs[mask], self.seqs[mask], self.exacts[mask])


def _empty_columns() -> Columns:
    return Columns(
        np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.int64)
    )


class EntryTable:
    def __init__(self, columns: Columns | None = None) -> None:
        self._recent: dict[int, Slot] = {}
        self._recent_exact: dict[int, int] = {}  # exact hash -> fid, for recent entries
        self._set_columns(columns or _empty_columns())

    # -- the merged columns ----------------------------------------------------------------

    def _set_columns(self, columns: Columns) -> None:
        order = np.argsort(columns.fids, kind="stable")
        self._fids = columns.fids[order]
        self._subs = columns.subs[order]
        self._seqs = columns.seqs[order]
        self._exacts = columns.exacts[order]
        self._alive = np.ones(len(order), dtype=bool)
        self._dead = 0
        self._by_exact = np.argsort(self._exacts, kind="stable").astype(np.int32)
        self._exacts_sorted = self._exacts[self._by_exact]

    def _row(self, fid: int) -> int:
        """The row of a live entry in the columns, or -1."""
        row = int(np.searchsorted(self._fids, fid))
        if row < len(self._fids) and self._fids[row] == fid and self._alive[row]:
            return row
        return -1

    def merge(self) -> None:
        """Fold the recent changes into the columns (and drop the dead rows)."""
        if not self._recent and not self._dead:
            return
        kept = self.columns()
        self._recent.clear()
        self._recent_exact.clear()
        self._set_columns(kept)

    def _maybe_merge(self) -> None:
        limit = max(_MIN_MERGE, int(_MERGE_SHARE * len(self._fids)))
        if len(self._recent) > limit or self._dead > limit:
            self.merge()

    # -- entries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._fids) - self._dead + len(self._recent)

    def __contains__(self, fid: int) -> bool:
        return self.get(fid) is not None

    def get(self, fid: int) -> Slot | None:
        slot = self._recent.get(fid)
        if slot is not None:
            return slot
        row = self._row(fid)
        if row < 0:
            return None
        return Slot(int(self._subs[row]), int(self._seqs[row]), int(self._exacts[row]))

    def put(self, fid: int, slot: Slot) -> None:
        """Hold an entry (replacing what was held under its id)."""
        self.pop(fid)
        self._recent[fid] = slot
        if slot.exact:
            self._recent_exact[slot.exact] = fid
        self._maybe_merge()

    def pop(self, fid: int) -> Slot | None:
        """Forget an entry; what was held of it, if anything."""
        slot = self._recent.pop(fid, None)
        if slot is not None:
            if slot.exact and self._recent_exact.get(slot.exact) == fid:
                del self._recent_exact[slot.exact]
            return slot
        row = self._row(fid)
        if row < 0:
            return None
        self._alive[row] = False
        self._dead += 1
        return Slot(int(self._subs[row]), int(self._seqs[row]), int(self._exacts[row]))

    def by_exact(self, exact: int) -> int | None:
        """The entry (fid) held under an exact-key hash, if any."""
        if not exact:
            return None
        fid = self._recent_exact.get(exact)
        if fid is not None:
            return fid
        start = int(np.searchsorted(self._exacts_sorted, exact, side="left"))
        end = int(np.searchsorted(self._exacts_sorted, exact, side="right"))
        for row in self._by_exact[start:end]:
            if self._alive[row]:
                return int(self._fids[row])
        return None

    def columns(self) -> Columns:
        """Every entry held, as columns (a copy)."""
        alive = self._alive
        recent = self._recent
        slots = list(recent.values())
        return Columns(
            np.concatenate([self._fids[alive], np.fromiter(recent.keys(), np.int64, len(recent))]),
            np.concatenate([self._subs[alive], np.array([s.sub for s in slots], np.int32)]),
            np.concatenate([self._seqs[alive], np.array([s.seq for s in slots], np.int64)]),
            np.concatenate([self._exacts[alive], np.array([s.exact for s in slots], np.int64)]),
        )

    def nbytes(self) -> int:
        """Memory held by the columns (the recent dicts not counted)."""
        arrays = (self._fids, self._subs, self._seqs, self._exacts, self._alive, self._by_exact)
        return sum(array.nbytes for array in arrays) + self._exacts_sorted.nbytes
