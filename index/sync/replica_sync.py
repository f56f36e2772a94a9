"""Keeps this replica's FAISS index equal to Redis (DESIGN.md, "Replica life cycle").

1. Subscribe to ``dc:events`` and the expiry key-events first; a reader task buffers what
   arrives in a queue from then on.
2. Rebuild the local index from Redis in pages, then apply the buffer; ``ready`` turns True.
3. Apply events as they come, idempotently (the local index orders changes by seq).
4. On a lost subscription: reconnect with backoff, subscribe again, load every entry whose
   seq is above the last one applied, then compare counts (a missed delete shows there).
   A periodic count check per namespace rebuilds on drift seen twice in a row, and when
   the local index needs maintenance (an HNSW to build, tombstones to compact).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import faiss
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from index.store import keys
from index.store.redis_store import RedisStore
from index.vectors.local_index import IndexedVector, LocalIndex

log = logging.getLogger(__name__)

# queued by the periodic check, so they run in order with events
_REBUILD = "rebuild"  # an index due for maintenance (flat outgrown, too many tombstones)
_RECONCILE = "reconcile"  # counts that differ from Redis's twice in a row
_BATCH = 256
_BUILD_CHUNK = 10_000  # vectors handed to FAISS at once during a rebuild
_BUILD_THREADS = 2  # OpenMP threads for that (per calling thread: queries keep one)


def _build(vectors: list[IndexedVector], index: LocalIndex) -> None:
    faiss.omp_set_num_threads(_BUILD_THREADS)
    index.add_many(vectors)


class _ReaderFailed(Exception):
    pass


class ReplicaSync:
    def __init__(
        self,
        store: RedisStore,
        index: LocalIndex,
        subscriber_factory: Callable[[], "aioredis.Redis"],
        page_size: int = 1000,
        drift_check_interval_s: float = 30.0,
    ) -> None:
        self.store = store
        self.index = index
        self._subscriber_factory = subscriber_factory
        self._page_size = page_size
        self._drift_interval = drift_check_interval_s
        self.ready = False
        self.subscribed = False
        self.last_seq = 0
        self.last_event_at: float | None = None  # when the last event was applied (epoch s)
        self.rebuilds = 0
        self.last_rebuild = {"entries": 0, "seconds": 0.0}
        self.reconnects = 0
        self.reconciled = 0
        self._queue: asyncio.Queue[Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._drift_strikes = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="replica-sync"),
            asyncio.create_task(self._check_drift_periodically(), name="drift-check"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # -- the life cycle ----------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        caught_up_once = False
        while True:
            subscriber = self._subscriber_factory()
            pubsub = subscriber.pubsub()
            reader: asyncio.Task[None] | None = None
            try:
                await self._prepare_redis()
                await pubsub.subscribe(keys.EVENTS_CHANNEL)
                await pubsub.psubscribe(keys.EXPIRED_PATTERN)
                self._queue = asyncio.Queue()
                reader = asyncio.create_task(self._read(pubsub, self._queue))
                if caught_up_once:
                    await self._catch_up()
                else:
                    await self._rebuild()
                await self._apply_pending()
                self.subscribed = True  # following the events, and caught up with them
                caught_up_once = True
                self.ready = True
                backoff = 0.1
                await self._apply_forever(self._queue)
            except (RedisError, OSError, _ReaderFailed) as error:
                self.subscribed = False
                self.reconnects += 1
                log.warning(
                    "event subscription lost (%s); reconnecting in %.1f s",
                    type(error).__name__,
                    backoff,
                )
            finally:
                if reader is not None:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await subscriber.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _prepare_redis(self) -> None:
        """The search index and expiry events, on every (re)connect: a Redis that restarted
        without its data has neither."""
        await self.store.ensure_search_index()
        if not await self.store.enable_expiry_events():
            log.warning(
                "Redis refused CONFIG SET notify-keyspace-events; expired entries leave the "
                "local index only when a lookup finds them gone or the drift check rebuilds"
            )

    async def _read(self, pubsub: Any, queue: "asyncio.Queue[Any]") -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # surfaced to the applier, which reconnects
            queue.put_nowait(_ReaderFailed(repr(error)))

    async def _apply_forever(self, queue: "asyncio.Queue[Any]") -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < _BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            await self._apply(batch)

    async def _apply_pending(self) -> None:
        assert self._queue is not None
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        await self._apply(batch)

    # -- applying events ---------------------------------------------------------------

    async def _apply(self, batch: list[Any]) -> None:
        adds: dict[bytes, int] = {}
        for item in batch:
            if isinstance(item, _ReaderFailed):
                raise item
            if item in (_REBUILD, _RECONCILE):
                await self._load_adds(adds)
                adds = {}
                await (self._rebuild() if item == _REBUILD else self._reconcile())
                continue
            channel = item["channel"].decode()
            if channel != keys.EVENTS_CHANNEL:  # an expired key
                parsed = keys.parse_entry_key(item["data"].decode())
                if parsed is not None:
                    self.index.remove(parsed[1])
                continue
            event = orjson.loads(item["data"])
            seq = int(event["seq"])
            self.last_seq = max(self.last_seq, seq)
            self.last_event_at = time.time()
            op, ns = event["op"], event["ns"]
            if op == "add":
                if not self.index.holds(event["id"], seq):
                    adds[keys.entry_key(ns, event["id"]).encode()] = seq
            else:
                await self._load_adds(adds)  # keep order: adds before this delete or flush
                adds = {}
                if op == "del":
                    self.index.remove(event["id"], seq)
                elif op == "flush":
                    self.index.flush(ns, seq)
        await self._load_adds(adds)

    async def _load_adds(self, adds: dict[bytes, int]) -> None:
        if adds:
            self.index.add_many(await self.store.load_vectors(list(adds)))

    # -- rebuild, catch-up, drift ------------------------------------------------------

    async def _rebuild(self) -> None:
        """Load every entry from Redis into a fresh index, then swap it in."""
        started = time.perf_counter()
        seq_at_start = await self.store.current_seq()
        fresh = LocalIndex(self.index.dim, self.index.shape, maintain_inline=True)
        loaded = 0
        last_log = started
        pending: list[IndexedVector] = []
        building: asyncio.Task[None] | None = None
        async for page in self.store.scan_vectors(self._page_size):
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
        self.last_seq = max(self.last_seq, seq_at_start)
        self.rebuilds += 1
        self._drift_strikes = 0
        elapsed = time.perf_counter() - started
        self.last_rebuild = {"entries": loaded, "seconds": round(elapsed, 3)}
        log.info(
            "rebuild done: %d entries in %.2f s (%.0f/s)",
            loaded,
            elapsed,
            loaded / elapsed if elapsed else 0.0,
        )

    async def _catch_up(self) -> None:
        since = self.last_seq
        loaded = 0
        async for page in self.store.vectors_since(since, self._page_size):
            self.index.add_many(page)
            loaded += len(page)
            self.last_seq = max([self.last_seq, *(item.seq for item in page)])
        log.info("caught up: %d entries written after seq %d", loaded, since)
        await self._reconcile()

    async def _reconcile(self) -> None:
        """Make the index hold what Redis holds, by ids: drop what Redis no longer has (a
        delete, eviction or expiry whose event was missed), load what it has and the index
        lacks. Counts alone can come out equal when a missed delete is offset by an add,
        and a full rebuild costs seconds at thousands of entries; ids cost a SCAN of keys."""
        seq_before = await self.store.current_seq()
        in_redis = await self.store.entry_keys(self._page_size)
        # an entry written after the scan began may be missing from it: never drop those
        gone = self.index.ids_written_by(seq_before) - in_redis.keys()
        for entry_id in gone:
            self.index.remove(entry_id, seq_before)
        missing = [in_redis[entry_id] for entry_id in in_redis.keys() - self.index.entry_ids()]
        for start in range(0, len(missing), self._page_size):
            self.index.add_many(
                await self.store.load_vectors(missing[start : start + self._page_size])
            )
        self.reconciled += 1
        if gone or missing:
            log.info("reconciled with Redis: %d dropped, %d loaded", len(gone), len(missing))

    async def _drifted(self) -> bool:
        in_redis = await self.store.count_by_namespace()
        local = self.index.count_by_namespace()
        drifted = {
            ns for ns in in_redis.keys() | local.keys() if in_redis.get(ns, 0) != local.get(ns, 0)
        }
        if drifted:
            log.info("count drift in %d namespace(s): %s", len(drifted), sorted(drifted)[:5])
        return bool(drifted)

    async def _check_drift_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._drift_interval)
            if not self.ready or self._queue is None:
                continue
            try:
                drifted = await self._drifted()
            except RedisError as error:
                log.warning("drift check failed: %s", error)
                continue
            self._drift_strikes = self._drift_strikes + 1 if drifted else 0
            if self.index.needs_maintenance():
                self._drift_strikes = 0
                self._queue.put_nowait(_REBUILD)
            elif self._drift_strikes >= 2:
                self._drift_strikes = 0
                self._queue.put_nowait(_RECONCILE)
