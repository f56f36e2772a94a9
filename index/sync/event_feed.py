"""Where a replica's events come from, on one Redis or on every primary of a cluster.

What a replica follows:

- each namespace's change events, on its channel ``dc:ev:{ns}`` (sharded pub/sub: on a
  cluster only the shard holding the channel's slot delivers them, and only to its own
  subscribers, so the feed subscribes on that primary);
- expired entry keys (keyspace notifications are local to the node where the key expired:
  the feed subscribes on every primary);
- namespace announcements on ``dc:namespaces`` (classic pub/sub reaches every node, so one
  subscription suffices): a namespace's first write announces it, and the replica follows
  it from then on.

One connection per primary (one on a single Redis); every reader puts what it reads on one
queue. ``follow`` returns only when the node has confirmed the subscription, so whatever the
namespace writes after that is on the queue, and a catch-up read after it misses nothing.
A lost connection, or a node taking a subscription back (its slots moved in a failover),
puts ``FeedFailed`` on the queue: the replica opens a new feed on the new topology.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import TimeoutError as RedisTimeoutError

from index.store import keys
from index.store.connection import connect, is_cluster_url, node_url, primary_for
from index.store.redis_store import RedisStore

log = logging.getLogger(__name__)

_CONFIRM_TIMEOUT_S = 5.0
_KINDS = {"subscribe", "psubscribe", "ssubscribe"}
_TAKEN_BACK = {"unsubscribe", "punsubscribe", "sunsubscribe"}
_MESSAGES = {"message", "pmessage", "smessage"}


class FeedFailed(Exception):
    """A node's connection was lost or it dropped a subscription: open a new feed."""


class _NodeLink:
    """One node's pub/sub connection and its reader."""

    def __init__(self, url: str, name: str, queue: "asyncio.Queue[Any]") -> None:
        self.url = url
        self.client = connect(url, None, name)
        self.pubsub = self.client.pubsub()
        self.queue = queue
        self.waiting: dict[tuple[str, bytes], asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.closing = False
        self.leaving: set[bytes] = set()  # channels given up on purpose (not a failure)

    async def subscribe(self, kind: str, names: list[str]) -> None:
        """Subscribe (``subscribe``, ``psubscribe`` or ``ssubscribe``) and wait until the node
        has confirmed each name."""
        if not names:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for name in names:
            future: asyncio.Future[None] = loop.create_future()
            self.waiting[(kind, name.encode())] = future
            futures.append(future)
        if kind == "ssubscribe":  # one SSUBSCRIBE's channels must share a slot
            for name in names:
                await self.pubsub.ssubscribe(name)
        else:
            await getattr(self.pubsub, kind)(*names)
        if self.reader is None:
            self.reader = asyncio.create_task(self._read(), name=f"events:{self.url}")
        try:
            async with asyncio.timeout(_CONFIRM_TIMEOUT_S):
                await asyncio.gather(*futures)
        except TimeoutError as error:
            raise RedisTimeoutError(f"{kind} not confirmed by {self.url}") from error

    async def unsubscribe_shard(self, names: list[str]) -> None:
        """Give up sharded channels (their confirmations are not failures)."""
        for name in names:
            self.leaving.add(name.encode())
            await self.pubsub.sunsubscribe(name)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                kind = message["type"]
                if kind in _MESSAGES:
                    self.queue.put_nowait(message)
                elif kind in _KINDS:
                    future = self.waiting.pop((kind, message["channel"]), None)
                    if future is not None and not future.done():
                        future.set_result(None)
                elif kind in _TAKEN_BACK and message["channel"] in self.leaving:
                    self.leaving.discard(message["channel"])
                elif kind in _TAKEN_BACK and not self.closing:
                    raise FeedFailed(f"{self.url} dropped {message['channel']!r}")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # surfaced to the applier, which opens a new feed
            failure = error if isinstance(error, FeedFailed) else FeedFailed(repr(error))
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(failure)
            self.queue.put_nowait(failure)

    async def close(self) -> None:
        self.closing = True
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.client.aclose()


class EventFeed:
    def __init__(self, store: RedisStore, url: str, name: str) -> None:
        self.store = store
        self.url = url
        self.name = name
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.namespaces: set[str] = set()
        self._links: dict[str, _NodeLink] = {}

    def _link(self, url: str) -> _NodeLink:
        link = self._links.get(url)
        if link is None:
            link = self._links[url] = _NodeLink(url, self.name, self.queue)
        return link

    def _primary_urls(self, key: str | None = None) -> list[str]:
        """The URL of the primary holding ``key`` (every primary's, without a key)."""
        cluster = self.store.cluster
        if cluster is None:
            return [self.url]
        nodes = cluster.get_primaries() if key is None else [primary_for(cluster, key)]
        return [node_url(self.url, node.host, int(node.port)) for node in nodes]

    async def open(self) -> None:
        """Expiry key-events from every primary, announcements from one."""
        cluster = self.store.cluster
        if isinstance(cluster, RedisCluster) and is_cluster_url(self.url):
            await cluster.nodes_manager.initialize()  # the topology as it is now
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
