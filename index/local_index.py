"""The replica's in-process FAISS index: one sub-index per (namespace, scope).

Keeping each (namespace, scope) in its own FAISS index makes isolation structural: a lookup
can only ever see entries of its own tenant, model, system prompt and RAG context.

Events from other replicas can arrive out of order with this replica's own writes, so every
change carries the write sequence number (``dc:seq``) it was made at: an add older than a
removal or flush already applied is ignored, which makes applying events idempotent.

Not thread-safe: the event loop owns it (FAISS search on one thread is sub-millisecond here).
"""

from collections import Counter, OrderedDict
from dataclasses import dataclass

import faiss
import numpy as np

from index.keys import entry_id_of, faiss_id

faiss.omp_set_num_threads(1)  # single queries: a second OpenMP thread only adds overhead

_MAX_TOMBSTONES = 100_000


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    distance: float


@dataclass
class _Slot:
    ns: str
    scope: str
    seq: int


class LocalIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._scopes: dict[tuple[str, str], faiss.IndexIDMap2] = {}
        self._slots: dict[int, _Slot] = {}
        self._tombstones: OrderedDict[int, int] = OrderedDict()
        self._flushed_at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, entry_id: str) -> bool:
        return faiss_id(entry_id) in self._slots

    def holds(self, entry_id: str, seq: int) -> bool:
        """True when the entry is held at ``seq`` or at a newer write."""
        slot = self._slots.get(faiss_id(entry_id))
        return slot is not None and slot.seq >= seq

    def replace_with(self, other: "LocalIndex") -> None:
        """Take over another index's contents (a finished rebuild), keeping tombstones."""
        self._scopes = other._scopes
        self._slots = other._slots
        self._flushed_at = {**other._flushed_at, **self._flushed_at}

    def add(self, ns: str, scope: str, entry_id: str, vector: np.ndarray, seq: int) -> bool:
        """Insert or replace an entry; False when a newer change already covers it."""
        fid = faiss_id(entry_id)
        if self._tombstones.get(fid, -1) >= seq or self._flushed_at.get(ns, -1) >= seq:
            return False
        existing = self._slots.get(fid)
        if existing is not None:
            if existing.seq > seq:
                return False
            self._drop(fid, existing)
        sub_index = self._scopes.get((ns, scope))
        if sub_index is None:
            sub_index = faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
            self._scopes[(ns, scope)] = sub_index
        row = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        sub_index.add_with_ids(row, np.array([fid], dtype=np.int64))
        self._slots[fid] = _Slot(ns, scope, seq)
        return True

    def remove(self, entry_id: str, seq: int | None = None) -> bool:
        """Remove an entry. With ``seq``, remember the removal so older adds stay out."""
        fid = faiss_id(entry_id)
        if seq is not None:
            self._tombstones[fid] = max(seq, self._tombstones.get(fid, -1))
            self._tombstones.move_to_end(fid)
            while len(self._tombstones) > _MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)
        slot = self._slots.get(fid)
        if slot is None or (seq is not None and slot.seq > seq):
            return False
        self._drop(fid, slot)
        return True

    def flush(self, ns: str, seq: int) -> int:
        """Drop every entry of a namespace written before ``seq``; returns how many."""
        self._flushed_at[ns] = max(seq, self._flushed_at.get(ns, -1))
        doomed = [fid for fid, slot in self._slots.items() if slot.ns == ns and slot.seq < seq]
        for fid in doomed:
            self._drop(fid, self._slots[fid])
        return len(doomed)

    def search(self, ns: str, scope: str, vector: np.ndarray, k: int) -> list[Candidate]:
        """The k nearest entries of one (namespace, scope), nearest first."""
        sub_index = self._scopes.get((ns, scope))
        if sub_index is None or sub_index.ntotal == 0:
            return []
        row = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        distances, ids = sub_index.search(row, min(k, sub_index.ntotal))
        return [
            Candidate(entry_id_of(int(fid)), float(dist))
            for dist, fid in zip(distances[0], ids[0], strict=True)
            if fid >= 0
        ]

    def entry_ids(self) -> set[str]:
        return {entry_id_of(fid) for fid in self._slots}

    def count_by_namespace(self) -> dict[str, int]:
        return dict(Counter(slot.ns for slot in self._slots.values()))

    def _drop(self, fid: int, slot: _Slot) -> None:
        sub_index = self._scopes[(slot.ns, slot.scope)]
        sub_index.remove_ids(np.array([fid], dtype=np.int64))  # type: ignore[arg-type]
        if sub_index.ntotal == 0:
            del self._scopes[(slot.ns, slot.scope)]
        del self._slots[fid]
