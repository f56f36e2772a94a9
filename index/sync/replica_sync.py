"""Keeps this replica's FAISS index equal to Redis (docs/design.md, "Replica life cycle").

Subscribe first (``event_feed.py``), rebuild from Redis in pages, apply events as they
come; after a lost feed, catch up by seq and reconcile by ids. This module is the life
cycle; its parts: ``affinity.py`` (which namespaces it holds), ``snapshots.py`` (the index
on disk), ``drift.py`` (count check, reconcile), ``loading.py`` (pages, the rebuild),
``maintenance.py`` (periodic checks), ``preparation.py`` (what Redis must have on each
connect), ``tasks.py`` (stopping).
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from index.store import keys
from index.store.errors import RedisError
from index.store.redis_store import RedisStore
from index.sync.affinity import NamespaceShare
from index.sync.drift import DriftCheck
from index.sync.event_feed import EventFeed, FeedFailed
from index.sync.loading import IndexLoader, return_freed_memory
from index.sync.maintenance import HOLD, REBUILD, RECONCILE, SNAPSHOT, Maintenance
from index.sync.preparation import prepare_redis
from index.sync.snapshots import SnapshotKeeper
from index.sync.tasks import cancel_until_done
from index.vectors.local_index import LocalIndex

log = logging.getLogger(__name__)

_BATCH = 256


class ReplicaSync:
    def __init__(
        self,
        store: RedisStore,
        index: LocalIndex,
        feed_factory: Callable[[], EventFeed],
        page_size: int = 1000,
        drift_check_interval_s: float = 30.0,
        snapshot_dir: Path | None = None,
        snapshot_interval_s: float = 300.0,
        embedder_id: str = "",
        affine: bool = False,
        release_after_s: float = 600.0,
    ) -> None:
        self.store = store
        self.index = index
        self._feed_factory = feed_factory
        self._feed: EventFeed | None = None
        self._page_size = page_size
        self.ready = False
        self.subscribed = False
        self.last_event_at: float | None = None  # when the last event was applied (epoch s)
        self.rebuilds_skipped = 0  # asked for, but no longer needed when their turn came
        self.reconnects = 0
        self.reconciled = 0
        self._queue: asyncio.Queue[Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.share = NamespaceShare(affine, release_after_s)
        self.snapshots = SnapshotKeeper(
            snapshot_dir, embedder_id, store.deployment_id, snapshot_interval_s
        )
        self.drift = DriftCheck(store, index, self.share)
        self.loader = IndexLoader(store, index, self.share, self.drift, page_size)
        self.maintenance = Maintenance(
            index,
            self.share,
            self.drift,
            lambda: self.ready,
            drift_check_interval_s,
            snapshot_interval_s,
        )

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="replica-sync"),
            asyncio.create_task(self.maintenance.check_drift_periodically(), name="drift-check"),
        ]
        if self.snapshots.folder is not None:
            self._tasks.append(
                asyncio.create_task(self.maintenance.snapshot_periodically(), name="index-snapshot")
            )

    async def stop(self) -> None:
        await cancel_until_done(self._tasks)
        self._tasks = []
        if self.ready and self.snapshots.folder is not None:  # a clean stop leaves a snapshot
            try:
                await self.write_snapshot()
            except Exception:  # never fail a shutdown over it
                log.exception("index snapshot at shutdown failed")

    # -- the life cycle ----------------------------------------------------------------

    @property
    def applied(self) -> dict[str, int]:
        """Per namespace, the newest seq applied."""
        return self.loader.applied

    @property
    def rebuilds(self) -> int:
        return self.loader.rebuilds

    @property
    def last_rebuild(self) -> dict[str, float]:
        return self.loader.last_rebuild

    @property
    def affine(self) -> bool:
        return self.share.affine

    @property
    def snapshot(self) -> dict[str, Any]:
        """The last snapshot restored and written (``/v1/replica``)."""
        return self.snapshots.status

    def serves_locally(self, ns: str) -> bool:
        """The local index answers for ``ns`` (else Redis does)."""
        return self.ready and self.share.serves_locally(ns)

    def indexes_writes(self, ns: str) -> bool:
        """Whether a new entry of ``ns`` written here goes into the local index too."""
        return self.share.indexes_writes(ns)

    def note_lookup(self, ns: str) -> None:
        """An affine replica asked for ``ns``: hold it from now on (loaded in the background)."""
        if self.share.asked_for(ns) and self._queue is not None:
            self._queue.put_nowait((HOLD, ns))

    @property
    def held_namespaces(self) -> set[str]:
        """Affine: the namespaces this replica holds (every one it follows otherwise)."""
        return set(self.share.held) if self.affine else self.namespaces

    @property
    def last_seq(self) -> int:
        """Events applied, over every namespace (each namespace counts its own seq)."""
        return sum(self.applied.values())

    @property
    def namespaces(self) -> set[str]:
        """The namespaces whose events this replica follows."""
        return set() if self._feed is None else set(self._feed.namespaces)

    async def _run(self) -> None:
        backoff = 0.1
        caught_up_once = False
        while True:
            feed = self._feed_factory()
            try:
                await prepare_redis(self.store)
                await feed.open()
                seqs = await self.store.feed.namespace_seqs()
                self._feed, self._queue = feed, feed.queue
                self.maintenance.attach(feed.queue)  # the lost feed's queue went with it
                for ns in sorted(self.share.wanted - self.share.held):  # the lost queue's asks
                    feed.queue.put_nowait((HOLD, ns))
                if not caught_up_once and await self._restore(seqs):
                    caught_up_once = True
                await feed.follow(self.share.of(seqs))
                if caught_up_once:
                    await self._catch_up(seqs)
                else:
                    await self.loader.rebuild(seqs, initial=True)
                await self._apply_pending()
                self.share.loaded = set(self.share.held)  # every held one is loaded by now
                self.subscribed = True  # following the events, and caught up with them
                caught_up_once = True
                self.ready = True
                if self.index.needs_maintenance():  # HNSW to build: in the background now
                    self.maintenance.ask(REBUILD)
                backoff = 0.1
                await self._apply_forever(feed.queue)
            except (RedisError, OSError, FeedFailed) as error:
                self.subscribed = False
                self.reconnects += 1
                log.warning(
                    "event feed lost (%s: %s); reconnecting in %.1f s",
                    type(error).__name__,
                    error,
                    backoff,
                )
            except Exception:  # a bug or a topology the client cannot use: retry, loudly
                self.subscribed = False
                self.reconnects += 1
                log.exception("event feed failed; reconnecting in %.1f s", backoff)
            finally:
                await feed.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

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
            if isinstance(item, FeedFailed):
                raise item
            if isinstance(item, tuple):  # an affine replica's share changes
                await self.loader.load_adds(adds)
                adds = {}
                kind, ns = item
                await (self._hold(ns) if kind == HOLD else self._release(ns))
                continue
            if item in (REBUILD, RECONCILE, SNAPSHOT):
                await self.loader.load_adds(adds)
                adds = {}
                self.maintenance.taken(item)
                if item == REBUILD and not self.index.needs_maintenance():
                    self.rebuilds_skipped += 1  # done meanwhile (an earlier rebuild's swap)
                    continue
                if item == SNAPSHOT:
                    try:
                        await self.write_snapshot()
                    except (OSError, RuntimeError) as error:  # a full disk stops no sync
                        log.warning("index snapshot not written: %s", error)
                else:
                    await (self.loader.rebuild() if item == REBUILD else self._reconcile())
                continue
            kind = item["type"]
            if kind == "pmessage":  # an expired key
                parsed = keys.parse_entry_key(item["data"].decode())
                if parsed is not None:
                    self.index.remove(parsed[1])
                continue
            if kind == "message":  # a namespace's first write or flush
                await self.loader.load_adds(adds)
                adds = {}
                await self._follow(list(self.share.of({item["data"].decode(): 0})))
                self.last_event_at = time.time()
                continue
            event = orjson.loads(item["data"])
            seq, op, ns = int(event["seq"]), event["op"], event["ns"]
            if self.affine and ns not in self.share.held:  # given up, its events still queued
                continue
            self.applied[ns] = max(self.applied.get(ns, 0), seq)
            self.last_event_at = time.time()
            if op == "add":
                if not self.index.holds(event["id"], seq):
                    adds[keys.entry_key(ns, event["id"]).encode()] = seq
            else:
                await self.loader.load_adds(adds)  # keep order: adds before this delete or flush
                adds = {}
                if op == "del":
                    self.index.remove(event["id"], seq)
                elif op == "flush":
                    self.index.flush(ns, seq)
        await self.loader.load_adds(adds)

    async def _hold(self, ns: str) -> None:
        """Affine: follow ``ns`` and load it; from then on the local index answers for it."""
        if not self.share.start_holding(ns):
            return
        started = time.perf_counter()
        self.applied.pop(ns, None)
        await self._follow([ns])
        self.share.loaded.add(ns)  # until now its lookups were answered from Redis
        count, took = self.index.count(ns), time.perf_counter() - started
        log.info("now holding namespace %s: %d entries loaded in %.2f s", ns, count, took)

    async def _release(self, ns: str) -> None:
        """Affine: stop following ``ns`` and drop it from the index (asked for again, it is
        loaded again)."""
        if self._feed is None or not self.share.stop_holding(ns):
            return
        await self._feed.unfollow(ns)
        self.applied.pop(ns, None)
        dropped = self.index.release(ns)
        await asyncio.to_thread(return_freed_memory)
        after_s = self.share.release_after_s
        log.info(
            "released namespace %s (%d entries): not asked for in %.0f s", ns, dropped, after_s
        )

    async def _follow(self, namespaces: list[str]) -> None:
        """Subscribe to namespaces not followed yet, then load what they wrote before."""
        assert self._feed is not None
        for ns in await self._feed.follow(namespaces):
            await self.loader.load_since(ns, self.applied.get(ns, 0))

    # -- snapshots, catch-up ---------------------------------------------------------

    async def _restore(self, seqs: Mapping[str, int]) -> bool:
        """Load the snapshot on disk, if there is a usable one; True when it is in force."""
        restored = await self.snapshots.restore(self.index, seqs)
        if restored is None:
            return False
        self.loader.applied = restored
        if self.affine:  # the share it held when it stopped
            self.share.held = set(restored)
        return True

    async def write_snapshot(self) -> None:
        """Write the index to the snapshot folder, unless nothing changed since the last
        one (a rebuild changes neither seqs nor counts, but the new index must be written)."""
        mark = (self.last_seq, len(self.index), self.rebuilds)
        await self.snapshots.write(self.index, self.share.of(self.applied), mark)

    async def _catch_up(self, seqs: Mapping[str, int]) -> None:
        """After a lost feed: each namespace's writes above the last seq applied."""
        loaded = 0
        for ns, seq in self.share.of(seqs).items():
            if seq > self.applied.get(ns, 0):
                loaded += await self.loader.load_since(ns, self.applied.get(ns, 0))
        log.info("caught up: %d entries written while the feed was down", loaded)
        await self._reconcile()

    async def _reconcile(self) -> None:
        """Make the index hold what Redis holds, by ids (``drift.py``), after following any
        namespace whose announcement was missed."""
        seq_before = self.share.of(await self.store.feed.namespace_seqs())
        if self._feed is not None:
            await self._follow(list(seq_before))
        await self.drift.reconcile(seq_before, self._page_size)
        self.reconciled += 1
