"""Where a command runs: one Redis, or the shard of a Redis Cluster that holds a namespace.

Every key of a namespace carries its ``{ns}`` hash tag, so a namespace lives on one shard.
RediSearch without its coordinator indexes each shard's own keys, in an index that is itself
a key of one slot (``keys.shard_search_index``): a cluster has one per primary, and FT.*
commands go straight to that primary (routed by key, redis-py would send them to any node
and follow MOVED, and every few MOVED it refreshes the whole topology). The store's parts
(entries, the search mirror, the feed, insights) all reach Redis through this.
"""

import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from index.store import keys
from index.store.connection import node_url, primary_for

SearchIndex = tuple[str, ClusterNode | None]  # an index's name; its primary on a cluster


def escape_tag(value: str) -> str:
    """Escape a value for a RediSearch TAG query (everything but letters and digits)."""
    return "".join(ch if ch.isalnum() else f"\\{ch}" for ch in value)


class Shards:
    def __init__(self, client: "aioredis.Redis") -> None:
        self.client = client
        self._node_clients: dict[str, aioredis.Redis] = {}
        self._shard_indexes: dict[str, str] = {}  # a primary's name -> its index's name

    @property
    def cluster(self) -> RedisCluster | None:
        """The cluster client, when Redis is a cluster."""
        client: object = self.client
        return client if isinstance(client, RedisCluster) else None

    async def topology(self) -> RedisCluster | None:
        """The cluster client, having learnt the topology (it does so on its first command),
        when Redis is a cluster."""
        cluster = self.cluster
        if cluster is not None:
            await cluster.initialize()  # once; a no-op after
        return cluster

    async def refresh_topology(self) -> None:
        """On a cluster, ask it for its topology as it is now (after a failover)."""
        cluster = self.cluster
        if cluster is not None:
            await cluster.nodes_manager.initialize()

    def primary_urls(self, url: str, key: str | None = None) -> list[str]:
        """The URL (``url``'s credentials and options) of the primary holding ``key``, of
        every primary without one; ``url`` itself on one Redis."""
        cluster = self.cluster
        if cluster is None:
            return [url]
        nodes = cluster.get_primaries() if key is None else [primary_for(cluster, key)]
        return [node_url(url, node.host, int(node.port)) for node in nodes]

    async def command(self, *args: Any) -> Any:
        """A raw command (RediSearch's FT.* have no typed wrapper in redis-py's asyncio API)."""
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def search(self, index: SearchIndex, *args: Any) -> Any:
        """Run ``FT.<command> <index name> *args`` where the index lives."""
        command, rest = args[0], args[1:]
        name, node = index
        if node is None:
            return await self.command(command, name, *rest)
        return await self.client.execute_command(  # type: ignore[no-untyped-call]
            command, name, *rest, target_nodes=node
        )

    async def search_index_of(self, ns: str) -> SearchIndex:
        """The search index holding ``ns``'s entries."""
        cluster = await self.topology()
        if cluster is None:
            return keys.SEARCH_INDEX, None
        return self.shard_index(cluster, primary_for(cluster, keys.sequence_key(ns)))

    async def search_indexes(self) -> list[SearchIndex]:
        """Every search index: one, or one per primary of a cluster."""
        cluster = await self.topology()
        if cluster is None:
            return [(keys.SEARCH_INDEX, None)]
        return [self.shard_index(cluster, node) for node in cluster.get_primaries()]

    def shard_index(self, cluster: RedisCluster, node: ClusterNode) -> tuple[str, ClusterNode]:
        """The index of a primary's shard, named after its lowest slot (looked up once per
        primary: a failover keeps a shard's slots, only resharding would move them)."""
        name = self._shard_indexes.get(node.name)
        if name is None:
            owned = (
                slot
                for slot, nodes in cluster.nodes_manager.slots_cache.items()
                if nodes and nodes[0].name == node.name
            )
            lowest = min(owned, default=None)
            if lowest is None:
                raise RedisConnectionError(f"{node.name} serves no slot now")
            name = self._shard_indexes[node.name] = keys.shard_search_index(lowest)
        return name, node

    async def client_of_shard(self, ns: str) -> "aioredis.Redis":
        """A client whose pipeline runs on one connection to the primary holding ``ns``
        (WAIT counts the replicas that have what that connection wrote)."""
        cluster = await self.topology()
        if cluster is None:
            return self.client
        node = primary_for(cluster, keys.sequence_key(ns))
        client = self._node_clients.get(node.name)
        if client is None:
            # the node's connection options (credentials, TLS, timeouts) a plain client takes
            accepted = inspect.signature(aioredis.Redis.__init__).parameters
            options = {k: v for k, v in node.connection_kwargs.items() if k in accepted}
            client = aioredis.Redis(**{**options, "host": node.host, "port": int(node.port)})
            self._node_clients[node.name] = client
        return client

    async def forget_node_clients(self) -> None:
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def scan(self, pattern: str, page_size: int) -> AsyncIterator[list[bytes]]:
        """The keys matching ``pattern``, in batches of up to ``page_size``."""
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=page_size):
            batch.append(key)
            if len(batch) >= page_size:
                yield batch
                batch = []
        if batch:
            yield batch
