"""The sync's periodic checks and the maintenance they queue (a rebuild, a reconcile, a
snapshot), each waiting at most once in the event queue so that it runs in order with the
events: a rebuild of a million entries takes minutes, the drift check that asks for one runs
every 30 s, and queued each time the rebuilds ran one after another for ever."""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from index.store.errors import RedisError
from index.sync.affinity import NamespaceShare
from index.sync.drift import DriftCheck
from index.vectors.local_index import LocalIndex

log = logging.getLogger(__name__)

# queued by the periodic checks, so they run in order with events
REBUILD = "rebuild"  # an index due for maintenance (flat outgrown, too many tombstones)
RECONCILE = "reconcile"  # counts that differ from Redis's twice in a row
SNAPSHOT = "snapshot"  # time to write the index to disk
HOLD, RELEASE = "hold", "release"  # (kind, namespace): an affine replica's share changes


class Maintenance:
    def __init__(
        self,
        index: LocalIndex,
        share: NamespaceShare,
        drift: DriftCheck,
        ready: Callable[[], bool],
        drift_interval_s: float,
        snapshot_interval_s: float,
    ) -> None:
        self.index = index
        self.share = share
        self.drift = drift
        self._ready = ready
        self._drift_interval = drift_interval_s
        self._snapshot_interval = snapshot_interval_s
        self.queue: asyncio.Queue[Any] | None = None  # the current feed's
        self._queued: set[str] = set()  # waiting in the queue

    def attach(self, queue: "asyncio.Queue[Any]") -> None:
        """A new feed's queue (what waited in the lost one's went with it)."""
        self.queue = queue
        self._queued.clear()

    def ask(self, item: str) -> None:
        """Queue a rebuild, reconcile or snapshot unless one is already waiting."""
        if self.queue is not None and item not in self._queued:
            self._queued.add(item)
            self.queue.put_nowait(item)

    def taken(self, item: str) -> None:
        """``item`` left the queue: asked for again, it is queued again."""
        self._queued.discard(item)

    async def snapshot_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._snapshot_interval)
            if self._ready() and self.queue is not None:
                self.ask(SNAPSHOT)

    async def check_drift_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._drift_interval)
            if not self._ready() or self.queue is None:
                continue
            for ns in self.share.idle():  # affine: given up, the balancer sends them elsewhere
                self.queue.put_nowait((RELEASE, ns))
            try:
                await self.drift.drifted()
            except RedisError as error:
                log.warning("drift check failed: %s", error)
                continue
            if self.index.needs_maintenance():
                self.drift.strikes = 0
                self.ask(REBUILD)
            elif self.drift.reconcile_due():
                self.ask(RECONCILE)
