"""Loading Redis's vectors into the local index: a namespace's writes since a seq, the adds
of a batch of events, and the full rebuild (a fresh index built while the next pages are
read, then swapped in). Keeps ``applied``, the newest seq loaded per namespace."""

import asyncio
import contextlib
import ctypes
import logging
import time
from collections.abc import AsyncIterator, Mapping

import faiss

from index.store.records import IndexedVector
from index.store.redis_store import RedisStore
from index.sync.affinity import NamespaceShare
from index.sync.drift import DriftCheck
from index.vectors.local_index import LocalIndex

log = logging.getLogger(__name__)

_BUILD_CHUNK = 10_000  # vectors handed to FAISS at once during a rebuild
_BUILD_THREADS = 2  # OpenMP threads for that (per calling thread: queries keep one)


def return_freed_memory() -> None:
    """Hand the heap freed by a swapped-out index back to the OS: glibc keeps it otherwise
    (after a 1M-entry rebuild the replica's RSS stayed at its peak, old index and new)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _build(vectors: list[IndexedVector], index: LocalIndex) -> None:
    faiss.omp_set_num_threads(_BUILD_THREADS)
    index.add_many(vectors)


class IndexLoader:
    def __init__(
        self,
        store: RedisStore,
        index: LocalIndex,
        share: NamespaceShare,
        drift: DriftCheck,
        page_size: int,
    ) -> None:
        self.store = store
        self.index = index
        self.share = share
        self.drift = drift
        self.page_size = page_size
        self.applied: dict[str, int] = {}  # per namespace, the newest seq applied
        self.rebuilds = 0
        self.last_rebuild = {"entries": 0, "seconds": 0.0}

    async def load_since(self, ns: str, seq: int) -> int:
        loaded = 0
        async for page in self.store.feed.vectors_since(ns, seq, self.page_size):
            self.index.add_many(page)
            loaded += len(page)
            self.applied[ns] = max([self.applied.get(ns, 0), *(item.seq for item in page)])
        return loaded

    async def load_adds(self, adds: dict[bytes, int]) -> None:
        if adds:
            self.index.add_many(await self.store.feed.load_vectors(list(adds)))

    async def rebuild(self, seqs: Mapping[str, int] | None = None, initial: bool = False) -> None:
        """Load every entry from Redis into a fresh index, then swap it in (``seqs``: each
        namespace's seq before the load, when the caller has just read them). The
        ``initial`` load builds flat sub-indexes only: ready as soon as the vectors are read."""
        started = time.perf_counter()
        seq_at_start = dict(await self.store.feed.namespace_seqs() if seqs is None else seqs)
        fresh = LocalIndex(self.index.dim, self.index.shape, maintain_inline=not initial)
        loaded = 0
        last_log = started
        pending: list[IndexedVector] = []
        building: asyncio.Task[None] | None = None
        async for page in self._every_vector():
            pending.extend(page)
            loaded += len(page)
            if len(pending) >= _BUILD_CHUNK:
                # the fresh index is ours alone until the swap: build it in a worker thread
                # (FAISS releases the GIL) while the next pages are read from Redis
                if building is not None:
                    await building
                building = asyncio.create_task(asyncio.to_thread(_build, pending, fresh))
                pending = []
            now = time.perf_counter()
            if now - last_log >= 1.0:
                log.info("rebuild: %d entries loaded (%.0f/s)", loaded, loaded / (now - started))
                last_log = now
        if building is not None:
            await building
        await asyncio.to_thread(_build, pending, fresh)
        self.index.replace_with(fresh)
        del fresh
        await asyncio.to_thread(return_freed_memory)
        for ns, seq in self.share.of(seq_at_start).items():
            self.applied[ns] = max(self.applied.get(ns, 0), seq)
        self.rebuilds += 1
        self.drift.strikes = 0
        elapsed = time.perf_counter() - started
        self.last_rebuild = {"entries": loaded, "seconds": round(elapsed, 3)}
        log.info(
            "rebuild done: %d entries in %.2f s (%.0f/s)",
            loaded,
            elapsed,
            loaded / elapsed if elapsed else 0.0,
        )

    async def _every_vector(self) -> AsyncIterator[list[IndexedVector]]:
        """Every entry's vector, in pages (affine: the held namespaces' only)."""
        if not self.share.affine:
            async for page in self.store.feed.scan_vectors(self.page_size):
                yield page
            return
        for ns in sorted(self.share.held):
            async for page in self.store.feed.vectors_since(ns, 0, self.page_size):
                yield page
