"""What a replica reads to build and follow its local index: every entry's vector in pages
(a rebuild), a namespace's entries written after a sequence number (catch-up), the vectors
of given entries, every live entry id (the reconcile), and the namespaces' sequences."""

from array import array
from collections.abc import AsyncIterator, Sequence

import numpy as np

from index.store import keys
from index.store.records import INDEX_FIELDS, IndexedVector, as_text, named
from index.store.shards import Shards, escape_tag


class EntryFeed:
    def __init__(self, shards: Shards, dim: int) -> None:
        self.shards = shards
        self.client = shards.client
        self.dim = dim

    async def entry_ids_by_namespace(self, page_size: int = 1000) -> dict[str, np.ndarray]:
        """Every live entry's FAISS id, by namespace (a SCAN of keys, no values read), as
        sorted int64 arrays: at a million entries, ids as Python strings in a dict held
        ~250 MB at the peak of a replica's reconcile, and the allocator kept most of it."""
        found: dict[str, array[int]] = {}
        async for batch in self.shards.scan(keys.entry_pattern(), page_size):
            for key in batch:
                parsed = keys.parse_entry_key(as_text(key))
                if parsed is not None:
                    found.setdefault(parsed[0], array("q")).append(keys.faiss_id(parsed[1]))
        return {ns: np.unique(np.frombuffer(fids, np.int64)) for ns, fids in found.items()}

    async def namespace_seqs(self) -> dict[str, int]:
        """Every namespace Redis has a sequence for, with its current seq (a SCAN)."""
        names: list[str] = []
        async for batch in self.shards.scan(keys.sequence_pattern(), 1000):
            names += [ns for key in batch if (ns := keys.namespace_of(as_text(key)))]
        return await self.seqs_of(names)

    async def seqs_of(self, namespaces: Sequence[str]) -> dict[str, int]:
        """The current seq of each of those namespaces (0: none yet)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for ns in namespaces:
                pipe.get(keys.sequence_key(ns))
            values = await pipe.execute()
        return {ns: int(value or 0) for ns, value in zip(namespaces, values, strict=True)}

    async def scan_vectors(self, page_size: int) -> AsyncIterator[list[IndexedVector]]:
        """Every entry's vector, a page at a time (for a full rebuild)."""
        async for batch in self.shards.scan(keys.entry_pattern(), page_size):
            yield await self.load_vectors(batch)

    async def vectors_since(
        self, ns: str, seq: int, page_size: int
    ) -> AsyncIterator[list[IndexedVector]]:
        """A namespace's entries written after ``seq``, oldest first (catch-up, and an
        affine replica's load of a namespace). Paged by seq, not by offset: a page at offset
        N costs Redis O(N) (at 250k entries the pages passed the 0.5 s timeout halfway, the
        feed was dropped and the load began again, for ever)."""
        index = await self.shards.search_index_of(ns)
        while True:
            reply = await self.shards.search(
                index,
                "FT.SEARCH",
                f"@ns:{{{escape_tag(ns)}}} @seq:[({seq} +inf]",
                "RETURN",
                "1",
                "seq",
                "SORTBY",
                "seq",
                "ASC",
                "LIMIT",
                "0",
                str(page_size),
            )
            rows = reply[b"results"]
            if not rows:
                return
            yield await self.load_vectors([row[b"id"] for row in rows])
            seq = max(int(row[b"extra_attributes"][b"seq"]) for row in rows)
            if len(rows) < page_size:
                return

    async def load_vectors(self, entry_keys: Sequence[bytes | str]) -> list[IndexedVector]:
        """Index fields of the given entry keys; keys that are gone are left out."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in entry_keys:
                pipe.hmget(key, list(INDEX_FIELDS))
            rows = await pipe.execute()
        loaded = []
        for key, values in zip(entry_keys, rows, strict=True):
            row = named(INDEX_FIELDS, values)
            parsed = keys.parse_entry_key(as_text(key))
            vector = row["vector"]
            if parsed is None or vector is None or len(vector) != self.dim * 4:
                continue
            loaded.append(
                IndexedVector(
                    ns=as_text(row["ns"]),
                    scope=as_text(row["scope"]),
                    entry_id=parsed[1],
                    vector=np.frombuffer(vector, dtype=np.float32),
                    seq=int(row["seq"] or 0),
                    exact_key=as_text(row["xkey"]),
                )
            )
        return loaded
