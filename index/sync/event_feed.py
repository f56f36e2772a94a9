"""Where a replica's events come from, on one Redis or on every primary of a cluster.

It follows each namespace's sharded channel ``dc:ev:{ns}`` (on the primary holding its
slot), expired keys (keyspace notifications, on every primary) and ``dc:namespaces`` (a
namespace's first write). One connection per primary, one queue for all. ``follow`` returns
once the node confirmed, so a catch-up read after it misses nothing; a lost connection or a
moved slot puts ``FeedFailed`` on the queue, and the replica opens a new feed.
"""

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from index.store import keys
from index.store.connection import is_cluster_url
from index.store.redis_store import RedisStore
from index.store.subscriptions import FeedFailed, NodeSubscription

__all__ = ["EventFeed", "FeedFailed"]

log = logging.getLogger(__name__)


class EventFeed:
    def __init__(self, store: RedisStore, url: str, name: str) -> None:
        self.store = store
        self.url = url
        self.name = name
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.namespaces: set[str] = set()
        self._links: dict[str, NodeSubscription] = {}

    def _link(self, url: str) -> NodeSubscription:
        link = self._links.get(url)
        if link is None:
            link = self._links[url] = NodeSubscription(url, self.name, self.queue)
        return link

    def _primary_urls(self, key: str | None = None) -> list[str]:
        """The URL of the primary holding ``key`` (every primary's, without a key)."""
        return self.store.shards.primary_urls(self.url, key)

    async def open(self) -> None:
        """Expiry key-events from every primary, announcements from one."""
        if self.store.cluster is not None and is_cluster_url(self.url):
            await self.store.shards.refresh_topology()  # the topology as it is now
        primaries = self._primary_urls()
        for url in primaries:
            await self._link(url).subscribe("psubscribe", [keys.EXPIRED_PATTERN])
        await self._link(primaries[0]).subscribe("subscribe", [keys.NAMESPACES_CHANNEL])

    async def follow(self, namespaces: Iterable[str]) -> list[str]:
        """Subscribe to the namespaces not followed yet; the ones that are new."""
        by_node: dict[str, list[str]] = {}
        for ns in set(namespaces) - self.namespaces:
            by_node.setdefault(self._primary_urls(keys.events_channel(ns))[0], []).append(ns)
        added: list[str] = []
        for url, names in by_node.items():
            await self._link(url).subscribe("ssubscribe", [keys.events_channel(n) for n in names])
            self.namespaces.update(names)
            added += names
        return added

    async def unfollow(self, ns: str) -> None:
        """Stop following a namespace (a namespace-affine replica that no longer serves it)."""
        if ns not in self.namespaces:
            return
        channel = keys.events_channel(ns)
        await self._link(self._primary_urls(channel)[0]).unsubscribe_shard([channel])
        self.namespaces.discard(ns)

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
        self._links.clear()
