"""The one door to the vector side: what the engine asks of the local index, the replica's
sync and Redis, in the words of a lookup (exact, nearest, confirm, keep).

Behind it: whether this replica's FAISS index answers for a namespace (ready, held, not
outgrown) or Redis's HNSW mirror does; the exact-match pointer, known here by a 64-bit hash
and confirmed on the entry; and the repair of an entry Redis no longer has (expired,
evicted, deleted by another replica before its event arrived), dropped here when found gone.
"""

import numpy as np

from index.store.keys import exact_key, is_entry_id
from index.store.records import Candidate, NewEntry, StoredEntry
from index.store.redis_store import RedisStore
from index.sync.replica_sync import ReplicaSync
from index.vectors.local_index import LocalIndex


class VectorSide:
    def __init__(self, store: RedisStore, index: LocalIndex, sync: ReplicaSync) -> None:
        self.store = store
        self.index = index
        self.sync = sync

    def asked_for(self, ns: str) -> None:
        """A lookup of ``ns`` began here (a namespace-affine replica then holds it)."""
        self.sync.note_lookup(ns)

    async def exact(self, ns: str, scope: str, normalised: str) -> StoredEntry | None:
        """The live entry stored for exactly this prompt. A replica that answers for ``ns``
        knows every exact key it holds, so only a known one costs a Redis read (the
        confirm); otherwise Redis's own pointer answers."""
        if not self.sync.serves_locally(ns):
            return await self.store.lookup_exact(ns, scope, normalised)
        key = exact_key(ns, scope, normalised)
        entry_id = self.index.exact_entry(key)
        if entry_id is None:
            return None
        entry = await self.confirm(ns, entry_id)
        # the index knows exact keys by a 64-bit hash: the entry confirms it is this key's
        return entry if entry is not None and entry.exact_key == key else None

    async def nearest(self, ns: str, scope: str, vector: np.ndarray, k: int) -> list[Candidate]:
        """The ``k`` nearest entries of (``ns``, ``scope``), nearest first: from the local
        index when it answers for them, else from Redis's mirror."""
        if self.sync.serves_locally(ns) and not self.index.outgrown(ns, scope):
            return self.index.search(ns, scope, vector, k)
        return await self.store.search.knn(ns, scope, vector, k)

    async def confirm(self, ns: str, entry_id: str) -> StoredEntry | None:
        """The entry as Redis holds it now; None, and dropped here, when it is gone."""
        entry = await self.store.get(ns, entry_id)
        if entry is None:
            self.index.remove(entry_id)
        return entry

    async def keep(self, entry: NewEntry) -> str:
        """Store a new entry (one atomic write in Redis, which tells the other replicas),
        and index it here when this replica indexes that namespace's writes; its id."""
        written = await self.store.write(entry)
        if self.sync.indexes_writes(entry.ns):
            self.index.add(written)
        return written.entry_id

    async def delete(self, ns: str, entry_id: str) -> bool:
        """Delete one entry of ``ns`` (in Redis, then here); False when it has no such one."""
        seq = await self.store.delete(ns, entry_id) if is_entry_id(entry_id) else None
        if seq is None:
            return False
        self.index.remove(entry_id, seq)
        return True

    async def delete_older_than(self, ns: str, cutoff: float) -> int:
        """Delete the entries of ``ns`` stored before ``cutoff`` (epoch s); how many."""
        deleted = 0
        for entry_id in await self.store.entries_older_than(ns, cutoff):
            deleted += await self.delete(ns, entry_id)
        return deleted

    async def flush(self, ns: str) -> int:
        """Delete every entry of ``ns``; how many."""
        deleted, seq = await self.store.flush_namespace(ns)
        self.index.flush(ns, seq)
        return deleted
