"""Finding and repairing drift between a replica's index and Redis.

The periodic check compares entry counts per namespace; drift seen twice in a row asks for
a reconcile by ids, which drops what Redis no longer has (a delete, eviction or expiry
whose event was missed) and loads what Redis has and the index lacks. Counts alone can come
out equal when a missed delete is offset by an add, and a full rebuild costs seconds at
thousands of entries; ids cost a SCAN of keys.
"""

import logging
from collections.abc import Mapping

import numpy as np

from index.store import keys
from index.store.redis_store import RedisStore
from index.sync.affinity import NamespaceShare
from index.vectors.local_index import LocalIndex

log = logging.getLogger(__name__)

FULL_COUNT_EVERY = 10  # one check in ten counts every namespace Redis has
STRIKES_TO_RECONCILE = 2  # drift seen this many checks in a row


class DriftCheck:
    def __init__(self, store: RedisStore, index: LocalIndex, share: NamespaceShare) -> None:
        self.store = store
        self.index = index
        self.share = share
        self.strikes = 0
        self._checks = 0
        self._counted_namespaces: set[str] = set()  # as the last full count found them

    async def drifted(self) -> bool:
        """Whether Redis's count of a namespace's entries differs from this replica's. Every
        ``FULL_COUNT_EVERY``-th check counts every namespace Redis has (finding ones this
        replica holds nothing of); the others count only the namespaces known, one by one
        (at a million entries grouping the whole index held Redis ~0.5 s per check)."""
        local = self.index.count_by_namespace()
        if self._checks % FULL_COUNT_EVERY == 0:
            counted = await self.store.search.count_by_namespace()
            self._counted_namespaces = set(counted)
        else:
            names = self.share.of(dict.fromkeys(self._counted_namespaces | local.keys(), 0))
            counted = await self.store.search.count_in(sorted(names))
        self._checks += 1
        in_redis = self.share.of(counted)
        drifted = {
            ns for ns in in_redis.keys() | local.keys() if in_redis.get(ns, 0) != local.get(ns, 0)
        }
        if drifted:
            log.info("count drift in %d namespace(s): %s", len(drifted), sorted(drifted)[:5])
        self.strikes = self.strikes + 1 if drifted else 0
        return bool(drifted)

    def reconcile_due(self) -> bool:
        """Drift seen often enough in a row to reconcile (counted from then on anew)."""
        if self.strikes < STRIKES_TO_RECONCILE:
            return False
        self.strikes = 0
        return True

    async def reconcile(self, seq_before: Mapping[str, int], page_size: int) -> tuple[int, int]:
        """Make the index hold what Redis holds, by ids; ``(dropped, loaded)``.
        ``seq_before``: each held namespace's seq before the scan (an entry written after
        the scan began may be missing from it: those are never dropped)."""
        in_redis = await self.store.feed.entry_ids_by_namespace(page_size)
        if self.share.affine:
            in_redis = {ns: fids for ns, fids in in_redis.items() if ns in self.share.held}
        # ids as int64 arrays, not strings: a million of them is 8 MB, not hundreds
        everywhere = np.concatenate([np.empty(0, np.int64), *in_redis.values()])
        written, written_at = self.index.fids_written_by(seq_before)
        gone = ~np.isin(written, everywhere, assume_unique=True)
        for fid, seq in zip(written[gone].tolist(), written_at[gone].tolist(), strict=True):
            self.index.remove(keys.entry_id_of(fid), seq)
        held = self.index.fids()
        missing = [
            keys.entry_key(ns, keys.entry_id_of(fid))
            for ns, fids in in_redis.items()
            for fid in fids[~np.isin(fids, held, assume_unique=True)].tolist()
        ]
        for start in range(0, len(missing), page_size):
            self.index.add_many(
                await self.store.feed.load_vectors(missing[start : start + page_size])
            )
        dropped = int(gone.sum())
        if dropped or missing:
            log.info("reconciled with Redis: %d dropped, %d loaded", dropped, len(missing))
        return dropped, len(missing)
