"""The replica's in-process FAISS index: one sub-index per (namespace, scope), so a lookup
can only see entries of its own tenant, model, system prompt and RAG context.

A sub-index (``sub_index.py``) is flat while small and HNSW once large; HNSW is built off
the event loop (the replica rebuilds from Redis and swaps in), the live index only reports
``needs_maintenance()``. Every change carries its namespace's seq, so applying events out of
order is idempotent. Per-entry facts live in ``entry_table.py``. Not thread-safe: the event
loop owns it; while a snapshot is written it is ``frozen`` (changes wait, searches go on).
"""

import sys
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.store.keys import entry_id_of, faiss_id
from index.store.records import Candidate, IndexedVector
from index.vectors.entry_table import Columns, EntryTable, Slot, exact_hash
from index.vectors.sub_index import IndexShape, SubIndex

_MAX_TOMBSTONES = 100_000


@dataclass
class IndexPart:
    """One (namespace, scope) of a local index as a snapshot keeps it: its FAISS index (with
    the ids of its tombstones, when HNSW) and, per live entry, its id, seq and exact-key
    hash (int64 arrays, one row per entry)."""

    ns: str
    scope: str
    faiss: Any  # faiss.IndexIDMap
    is_hnsw: bool
    tombstones: np.ndarray
    ids: np.ndarray
    seqs: np.ndarray
    exact_hashes: np.ndarray


class LocalIndex:
    def __init__(
        self, dim: int, shape: IndexShape | None = None, maintain_inline: bool = False
    ) -> None:
        self.dim = dim
        self.shape = shape or IndexShape()
        self.maintain_inline = maintain_inline
        self._scopes: dict[tuple[str, str], SubIndex] = {}
        # (namespace, scope) <-> a small int, as the entry table names a sub-index
        self._codes: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str]] = []
        self._entries = EntryTable()
        self._per_ns: Counter[str] = Counter()
        self._tombstones: OrderedDict[int, int] = OrderedDict()
        self._flushed_at: dict[str, int] = {}
        self._deferred: list[tuple[str, tuple[Any, ...]]] | None = None  # frozen: waiting

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: str) -> bool:
        return faiss_id(entry_id) in self._entries

    def _code(self, ns: str, scope: str) -> int:
        key = (ns, scope)
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self._keys)
            self._keys.append((sys.intern(ns), sys.intern(scope)))
        return code

    def _codes_of(self, ns: str) -> np.ndarray:
        return np.array([code for (n, _), code in self._codes.items() if n == ns], np.int32)

    def holds(self, entry_id: str, seq: int) -> bool:
        """True when the entry is held at ``seq`` or at a newer write."""
        slot = self._entries.get(faiss_id(entry_id))
        return slot is not None and slot.seq >= seq

    def replace_with(self, other: "LocalIndex") -> None:
        """Take over another index's contents (a finished rebuild), keeping tombstones."""
        for sub_index in other._scopes.values():
            sub_index.maintain_inline = self.maintain_inline  # the live index never blocks
        other._entries.merge()
        self._scopes = other._scopes
        self._codes, self._keys = other._codes, other._keys
        self._entries = other._entries
        self._per_ns = other._per_ns
        self._flushed_at = {**other._flushed_at, **self._flushed_at}

    def add(self, item: IndexedVector) -> bool:
        """Insert or replace an entry; False when a newer change already covers it."""
        return self.add_many([item]) == 1

    @property
    def frozen(self) -> bool:
        return self._deferred is not None

    def freeze(self) -> None:
        """Hold changes back (searches go on) until :meth:`thaw`: a snapshot is being read."""
        self._deferred = []

    def thaw(self) -> None:
        """Apply the changes held back, in their order."""
        deferred, self._deferred = self._deferred or [], None
        for change, arguments in deferred:
            getattr(self, change)(*arguments)

    def add_many(self, items: Iterable[IndexedVector]) -> int:
        """Insert or replace entries, one FAISS call per sub-index; returns how many went in
        (0 while frozen: they go in at the thaw)."""
        if self._deferred is not None:
            self._deferred.append(("add_many", (list(items),)))
            return 0
        latest: dict[int, IndexedVector] = {}  # one id twice in a batch: the newer write
        for item in items:
            fid = faiss_id(item.entry_id)
            earlier = latest.get(fid)
            if earlier is None or item.seq >= earlier.seq:
                latest[fid] = item
        groups: dict[int, list[tuple[int, np.ndarray]]] = {}
        for fid, item in latest.items():
            ns, seq = item.ns, item.seq
            if self._tombstones.get(fid, -1) >= seq or self._flushed_at.get(ns, -1) >= seq:
                continue
            existing = self._entries.get(fid)
            if existing is not None:
                if existing.seq > seq:
                    continue
                self._drop_many({existing.sub: [fid]})
            code = self._code(ns, item.scope)
            self._entries.put(fid, Slot(code, seq, exact_hash(item.exact_key)))
            self._per_ns[self._keys[code][0]] += 1
            groups.setdefault(code, []).append((fid, item.vector))
        for code, rows in groups.items():
            sub_index = self._scopes.get(self._keys[code])
            if sub_index is None:
                sub_index = self._scopes[self._keys[code]] = SubIndex(
                    self.dim, self.shape, self.maintain_inline
                )
            ids = np.fromiter((fid for fid, _ in rows), dtype=np.int64, count=len(rows))
            vectors = np.ascontiguousarray(np.vstack([v for _, v in rows]), dtype=np.float32)
            sub_index.add(ids, vectors.reshape(len(rows), self.dim))
        return sum(len(rows) for rows in groups.values())

    def remove(self, entry_id: str, seq: int | None = None) -> bool:
        """Remove an entry. With ``seq``, remember the removal so older adds stay out."""
        if self._deferred is not None:
            self._deferred.append(("remove", (entry_id, seq)))
            return entry_id in self
        fid = faiss_id(entry_id)
        if seq is not None:
            self._tombstones[fid] = max(seq, self._tombstones.get(fid, -1))
            self._tombstones.move_to_end(fid)
            while len(self._tombstones) > _MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)
        slot = self._entries.get(fid)
        if slot is None or (seq is not None and slot.seq > seq):
            return False
        self._drop_many({slot.sub: [fid]})
        return True

    def flush(self, ns: str, seq: int) -> int:
        """Drop every entry of a namespace written before ``seq``; returns how many."""
        if self._deferred is not None:
            self._deferred.append(("flush", (ns, seq)))
            return self._per_ns[ns]
        self._flushed_at[ns] = max(seq, self._flushed_at.get(ns, -1))
        return self._drop_where(ns, before=seq)

    def release(self, ns: str) -> int:
        """Forget a namespace locally (a namespace-affine replica that no longer serves it):
        unlike :meth:`flush`, nothing is remembered, so it can be loaded again whole."""
        if self._deferred is not None:
            self._deferred.append(("release", (ns,)))
            return self._per_ns[ns]
        dropped = self._drop_where(ns, before=None)
        self._flushed_at.pop(ns, None)
        return dropped

    def _drop_where(self, ns: str, before: int | None) -> int:
        columns = self._entries.columns()
        doomed = np.isin(columns.subs, self._codes_of(ns))
        if before is not None:
            doomed &= columns.seqs < before
        chosen = columns.where(doomed)
        by_sub: dict[int, list[int]] = {}
        for fid, code in zip(chosen.fids.tolist(), chosen.subs.tolist(), strict=True):
            by_sub.setdefault(code, []).append(fid)
        self._drop_many(by_sub)
        return len(chosen)

    def _drop_many(self, by_sub: Mapping[int, list[int]]) -> None:
        """Forget entries, given by sub-index code (one FAISS call per sub-index)."""
        for code, fids in by_sub.items():
            key = self._keys[code]
            sub_index = self._scopes[key]
            sub_index.remove_many(fids)
            if sub_index.live == 0:
                del self._scopes[key]
            for fid in fids:
                self._entries.pop(fid)
            self._per_ns[key[0]] -= len(fids)

    def search(self, ns: str, scope: str, vector: np.ndarray, k: int) -> list[Candidate]:
        """The k nearest entries of one (namespace, scope), nearest first."""
        sub_index = self._scopes.get((ns, scope))
        if sub_index is None:
            return []
        row = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        return [Candidate(entry_id_of(fid), dist) for dist, fid in sub_index.search(row, k)]

    def outgrown(self, ns: str, scope: str) -> bool:
        """A flat sub-index past the size for flat search, its HNSW not built yet: a lookup
        there is better served by Redis's HNSW mirror than by scanning it here."""
        sub_index = self._scopes.get((ns, scope))
        return sub_index is not None and sub_index.too_big_for_flat

    def exact_entry(self, exact_key: str) -> str | None:
        """The entry this replica holds under an exact-match key, if any (by a 64-bit hash of
        the key: confirm it on the entry before serving it)."""
        fid = self._entries.by_exact(exact_hash(exact_key))
        return None if fid is None else entry_id_of(fid)

    def entry_ids(self) -> set[str]:
        return {entry_id_of(fid) for fid in self.fids().tolist()}

    def fids(self) -> np.ndarray:
        """The FAISS id of every entry held (int64, in no particular order)."""
        return self._entries.columns().fids

    def fids_written_by(self, seqs: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """The entries held at a write no newer than their namespace's seq in ``seqs``: their
        FAISS ids, and that seq for each (two int64 arrays)."""
        columns = self._entries.columns()
        seq_of_code = np.array([seqs.get(ns, 0) for ns, _ in self._keys] or [0], np.int64)
        limits = seq_of_code[columns.subs]
        chosen = columns.seqs <= limits
        return columns.fids[chosen], limits[chosen]

    def count_by_namespace(self) -> dict[str, int]:
        return {ns: count for ns, count in self._per_ns.items() if count}

    def count(self, ns: str) -> int:
        return self._per_ns[ns]

    def needs_maintenance(self) -> bool:
        """A flat sub-index has outgrown flat search, or an HNSW one carries too many
        tombstones: time for a rebuild (never done inline on the live index)."""
        return any(sub.too_big_for_flat or sub.too_many_tombstones for sub in self._scopes.values())

    def stored_vectors(self) -> int:
        """Vectors FAISS holds, tombstoned ones included (what memory grows with)."""
        return sum(int(sub.faiss.ntotal) for sub in self._scopes.values())

    def describe(self) -> dict[str, int]:
        subs = self._scopes.values()
        return {
            "sub_indexes": len(self._scopes),
            "hnsw_sub_indexes": sum(sub.is_hnsw for sub in subs),
            # past flat search, their HNSW still to build (served from Redis meanwhile)
            "outgrown_sub_indexes": sum(sub.too_big_for_flat for sub in subs),
            "stored_vectors": self.stored_vectors(),
            "compactions": sum(sub.compactions for sub in subs),
        }

    def parts(self) -> Iterator[IndexPart]:
        """Every (namespace, scope) as a snapshot keeps it (read them while frozen)."""
        columns = self._entries.columns()
        order = np.argsort(columns.subs, kind="stable")
        sorted_subs = columns.subs[order]
        for key, sub_index in list(self._scopes.items()):
            code = self._codes[key]
            start, end = np.searchsorted(sorted_subs, [code, code + 1])
            rows = order[start:end]
            yield IndexPart(
                key[0],
                key[1],
                sub_index.faiss,
                sub_index.is_hnsw,
                np.array(sorted(sub_index.tombstones), np.int64),
                columns.fids[rows],
                columns.seqs[rows],
                columns.exacts[rows],
            )

    def removals(self) -> tuple[list[tuple[int, int]], dict[str, int]]:
        """What keeps older adds out: removed ids with their seq, flushed namespaces' seqs."""
        return list(self._tombstones.items()), dict(self._flushed_at)

    @classmethod
    def restored(
        cls,
        dim: int,
        shape: IndexShape,
        parts: Iterable[IndexPart],
        removed: Iterable[tuple[int, int]] = (),
        flushed_at: Mapping[str, int] | None = None,
    ) -> "LocalIndex":
        """An index put back together from a snapshot's parts."""
        index = cls(dim, shape)
        pieces: list[Columns] = []
        for part in parts:
            sub_index = SubIndex(dim, shape, maintain_inline=False)
            sub_index.faiss, sub_index.is_hnsw = part.faiss, part.is_hnsw
            sub_index.tombstones = set(part.tombstones.tolist())
            index._scopes[(part.ns, part.scope)] = sub_index
            code = index._code(part.ns, part.scope)
            pieces.append(
                Columns(
                    part.ids.astype(np.int64),
                    np.full(len(part.ids), code, np.int32),
                    part.seqs.astype(np.int64),
                    part.exact_hashes.astype(np.int64),
                )
            )
            index._per_ns[part.ns] += len(part.ids)
        if pieces:
            index._entries = EntryTable(
                Columns(
                    *(
                        np.concatenate(column)
                        for column in zip(
                            *((p.fids, p.subs, p.seqs, p.exacts) for p in pieces), strict=True
                        )
                    )
                )
            )
        index._tombstones = OrderedDict(removed)
        index._flushed_at = dict(flushed_at or {})
        return index
