"""Redis as the source of truth: entries (written, read, deleted), their exact pointers and
their events. The store's other jobs are parts it holds: ``shards``, ``search`` (the HNSW
mirror), ``feed``, ``insights``, and the records beside the entries (``audits``,
``tenants``, ``rate_limits``, ``locks``, ``stats``). Nothing outside ``index/store`` talks
to Redis but through these.

Every write and delete is one Lua script (``index/store/lua/``) on its namespace's shard:
seq, hash, pointer and event in one atomic step (docs/design.md, "Lua scripts").
"""

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from index.store import keys
from index.store.audits import AuditLog
from index.store.connection import GuardedRedisCluster, NotReplicated, breaker_openings
from index.store.feed import EntryFeed
from index.store.insights import StoreInsights
from index.store.locks import Locks
from index.store.rate_limits import RateBuckets
from index.store.records import (
    IndexedVector,
    NewEntry,
    Retention,
    StoredEntry,
    as_text,
    stored_entry,
)
from index.store.scripts import Scripts
from index.store.search import SearchMirror
from index.store.shadow import ShadowLog
from index.store.shards import Shards
from index.store.stats import StatsLog
from index.store.tenant_records import TenantRecords

# a script that saw its inputs change is run again with fresh ones, at most this often
_ATTEMPTS = 20


class StoreConflict(RuntimeError):
    """A write kept racing others past ``_ATTEMPTS`` tries (it changed nothing)."""


log = logging.getLogger(__name__)


class RedisStore:
    def __init__(
        self,
        client: "aioredis.Redis",
        origin: str,
        dim: int,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 200,
    ) -> None:
        self.client = client
        self.origin = origin
        self.dim = dim
        # a write counts as stored once this many replicas of its shard have it (WAIT)
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.scripts = Scripts.register(client)
        self.evictions: Counter[str] = Counter()  # entries this process evicted, per namespace
        # the store's other jobs, each its own part over the same connection
        self.shards = Shards(client)
        self.search = SearchMirror(self.shards, dim)  # the HNSW mirror: KNN, counts
        self.feed = EntryFeed(self.shards, dim)  # what a replica reads to follow Redis
        self.insights = StoreInsights(self.shards)  # an operator's reads, the export
        self.audits = AuditLog(self.shards, self.scripts)  # audited hits
        self.tenants = TenantRecords(client)  # tenants and their API keys
        self.rate_limits = RateBuckets(self.scripts)  # token buckets
        self.locks = Locks(client, self.scripts)  # the coalescing locks
        self.stats = StatsLog(client)  # telemetry counters, near misses
        self.shadow = ShadowLog(self.shards)  # what shadow mode would have served

    @property
    def cluster(self) -> RedisCluster | None:
        """The cluster client, when Redis is a cluster."""
        return self.shards.cluster

    async def _durably(self, ns: str, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a write script; with ``wait_replicas``, return only once that many replicas
        of the namespace's shard have it (else NotReplicated: on the primary, not yet safe
        from its failure)."""
        if self.wait_replicas <= 0:
            return await script(keys=keys, args=args)
        cluster = await self.shards.topology()
        if isinstance(cluster, GuardedRedisCluster):
            cluster.breaker.check()
        try:
            shard = await self.shards.client_of_shard(ns)
            async with shard.pipeline(transaction=False) as pipe:
                await script(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
                result, acknowledged = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError) as error:
            if isinstance(cluster, GuardedRedisCluster):
                await self.shards.forget_node_clients()  # the shard's primary may have moved
                if isinstance(error, RedisTimeoutError):
                    cluster.breaker.failed()
            raise
        if int(acknowledged) < self.wait_replicas:
            raise NotReplicated(
                f"{int(acknowledged)} of {self.wait_replicas} replica(s) had the write to "
                f"namespace {ns!r} within {self.wait_timeout_ms} ms"
            )
        return result

    @property
    def breaker_openings(self) -> int:
        """How many times this store's client found Redis not answering (its breaker)."""
        return breaker_openings(self.client)

    async def aclose(self) -> None:
        await self.shards.forget_node_clients()

    async def ping(self) -> bool:
        cluster = await self.shards.topology()
        if cluster is None:
            return bool(await self.client.ping())
        # one answering node will do: a shard without a primary fails its own commands only
        return bool(await cluster.execute_command("PING", target_nodes=cluster.get_random_node()))

    async def enable_expiry_events(self) -> bool:
        """Turn on keyspace expiry events (on every node of a cluster, replicas too: one of
        them may be the next primary); False when a server refuses CONFIG SET."""
        cluster = await self.shards.topology()
        targets: list[Any] = [None] if cluster is None else cluster.get_nodes()
        try:
            for node in targets:
                options = {} if node is None else {"target_nodes": node}
                reply = await self.client.execute_command(  # type: ignore[no-untyped-call]
                    "CONFIG", "GET", "notify-keyspace-events", **options
                )
                config = dict(reply)  # RESP3: a map
                current = as_text(config.get(b"notify-keyspace-events", b""))
                if "E" in current and ("x" in current or "A" in current):
                    continue
                flags = "".join(sorted(set(current) | {"E", "x"}))
                await self.client.execute_command(  # type: ignore[no-untyped-call]
                    "CONFIG", "SET", "notify-keyspace-events", flags, **options
                )
            return True
        except ResponseError:
            return False

    async def load_scripts(self) -> None:
        """Load every script on every node (a pipelined EVALSHA cannot load a missing one; a
        promoted or restarted node starts without them)."""
        cluster = await self.shards.topology()
        for script in self.scripts.all():
            if cluster is None:
                await self.client.script_load(script.script)
            else:
                await cluster.execute_command(
                    "SCRIPT", "LOAD", script.script, target_nodes=cluster.get_nodes()
                )

    # -- writes ------------------------------------------------------------------------

    async def write(self, entry: NewEntry) -> IndexedVector:
        """Store an entry (replacing the one its exact key points at); what was written."""
        xkey = keys.exact_key(entry.ns, entry.scope, entry.normalised_prompt)
        now = time.time()
        fields = entry.hash_fields(now if entry.created is None else entry.created)
        ns, retention, new_id = entry.ns, entry.retention, keys.new_entry_id()
        for _ in range(_ATTEMPTS):
            seen = as_text(await self.client.get(xkey))
            result = await self._durably(
                ns,
                self.scripts.write_entry,
                keys=[
                    keys.sequence_key(ns),
                    xkey,
                    keys.recency_key(ns),
                    keys.frequency_key(ns),
                    keys.entry_key(ns, new_id),
                    keys.entry_key(ns, seen or new_id),
                ],
                args=[
                    ns,
                    new_id,
                    seen,
                    retention.ttl,
                    keys.events_channel(ns),
                    self.origin,
                    now,
                    keys.NAMESPACES_CHANNEL,
                    *fields,
                ],
            )
            if as_text(result[0]) != "retry":
                written = IndexedVector(
                    ns=ns,
                    scope=entry.scope,
                    entry_id=as_text(result[0]),
                    vector=entry.vector,
                    seq=int(result[1]),
                    exact_key=xkey,
                )
                if retention.capacity > 0:
                    await self._make_room(ns, retention, keep=written.entry_id)
                return written
        raise StoreConflict(f"a write to namespace {ns!r} kept racing others")

    async def _make_room(self, ns: str, retention: Retention, keep: str) -> None:
        """Evict the lowest-ranked entries (LRU or LFU) of a namespace over its capacity,
        never ``keep`` (the entry just written)."""
        order = keys.frequency_key(ns) if retention.eviction == "lfu" else keys.recency_key(ns)
        for _ in range(_ATTEMPTS):
            excess = int(await self.client.zcard(order)) - retention.capacity
            if excess <= 0:
                return
            lowest: list[Any] = await self.client.zrange(order, 0, excess)
            victims = [as_text(victim) for victim in lowest if as_text(victim) != keep][:excess]
            async with self.client.pipeline(transaction=False) as pipe:
                for victim in victims:
                    pipe.hget(keys.entry_key(ns, victim), "xkey")
                pointers = await pipe.execute()
            victim_keys: list[str] = []
            for victim, pointer in zip(victims, pointers, strict=True):
                victim_key = keys.entry_key(ns, victim)
                victim_keys += [
                    victim_key,
                    keys.feedback_key(ns, victim),
                    as_text(pointer) or victim_key,
                ]
            left, evicted = await self.scripts.evict_entries(
                keys=[
                    keys.sequence_key(ns),
                    keys.recency_key(ns),
                    keys.frequency_key(ns),
                    keys.stats_key(ns),
                    *victim_keys,
                ],
                args=[
                    ns,
                    keys.events_channel(ns),
                    self.origin,
                    retention.capacity,
                    retention.eviction,
                    *victims,
                ],
            )
            self.evictions[ns] += int(evicted)
            if int(left) <= 0:
                return
        raise StoreConflict(f"making room in namespace {ns!r} kept racing other writes")

    async def record_feedback(
        self,
        ns: str,
        entry_id: str,
        correct: bool,
        radius: float,
        report: dict[str, Any],
        counted: bool = True,
    ) -> tuple[bool, float | None]:
        """Keep a client's report on an entry's hit: a wrong one narrows the entry's
        feedback radius to ``radius`` (never widens it), a right one is counted when
        ``counted`` (it never widens what is served). ``(entry exists, its feedback
        radius)``."""
        result = await self.scripts.record_feedback(
            keys=[keys.entry_key(ns, entry_id), keys.feedback_key(ns, entry_id)],
            args=["1" if correct else "0", radius, orjson.dumps(report), "1" if counted else "0"],
        )
        return _feedback_radius(result)

    async def record_check(
        self, ns: str, entry_id: str, right: bool, distance: float
    ) -> tuple[bool, float | None]:
        """Keep the service's own check of an entry's answer: a right one widens its
        verified radius to ``distance`` (never narrows it), a wrong one narrows its feedback
        radius to ``distance`` (never widens it). ``(entry exists, its feedback radius)``."""
        result = await self.scripts.record_check(
            keys=[keys.entry_key(ns, entry_id)], args=["1" if right else "0", distance]
        )
        return _feedback_radius(result)

    async def delete(self, ns: str, entry_id: str) -> int | None:
        """Delete one entry; its delete seq, or None when the namespace has no such entry."""
        key = keys.entry_key(ns, entry_id)
        for _ in range(_ATTEMPTS):
            pointer = await self.client.hget(key, "xkey")
            if pointer is None:
                return None
            seq = int(
                await self._durably(
                    ns,
                    self.scripts.delete_entry,
                    keys=[
                        keys.sequence_key(ns),
                        key,
                        keys.recency_key(ns),
                        keys.frequency_key(ns),
                        keys.feedback_key(ns, entry_id),
                        as_text(pointer),
                    ],
                    args=[ns, entry_id, keys.events_channel(ns), self.origin],
                )
            )
            if seq >= 0:
                return seq or None
        raise StoreConflict(f"deleting {entry_id} kept racing other writes")

    async def flush_namespace(self, ns: str) -> tuple[int, int]:
        """Delete every entry and pointer of a namespace; ``(entries deleted, flush seq)``."""
        deleted = 0
        async for batch in self.shards.scan(keys.entry_pattern(ns), 1000):
            deleted += await self.client.unlink(*batch)
        async for batch in self.shards.scan(keys.exact_pattern(ns), 1000):
            await self.client.unlink(*batch)
        await self.client.delete(keys.recency_key(ns), keys.frequency_key(ns))
        seq = await self.scripts.announce_flush(
            keys=[keys.sequence_key(ns)],
            args=[ns, keys.events_channel(ns), self.origin, keys.NAMESPACES_CHANNEL],
        )
        return deleted, int(seq)

    # -- reads -------------------------------------------------------------------------

    async def lookup_exact(self, ns: str, scope: str, normalised_prompt: str) -> StoredEntry | None:
        """The live entry whose exact key matches (the pointer, then the entry)."""
        entry_id = await self.client.get(keys.exact_key(ns, scope, normalised_prompt))
        return None if entry_id is None else await self.get(ns, as_text(entry_id))

    async def get(self, ns: str, entry_id: str) -> StoredEntry | None:
        """An entry as served on a HIT, with its remaining lifetime, in one round trip."""
        fields, pttl = await self.scripts.read_entry(keys=[keys.entry_key(ns, entry_id)])
        return stored_entry(entry_id, fields, int(pttl))

    async def touch(self, served: Mapping[tuple[str, str, str], tuple[int, float]]) -> None:
        """Apply HITs to their entries (``{(ns, id, exact pointer): (hits, last hit)}``):
        count them, refresh LRU/LFU scores, apply the TTL policy. Nothing happens to an
        entry that is gone (a late count must not recreate it). One pipeline on one Redis;
        on a cluster (whose pipelines refuse scripts) the scripts run concurrently."""
        calls: list[tuple[list[str], list[str | int | float]]] = [
            (
                [
                    keys.entry_key(ns, entry_id),
                    keys.recency_key(ns),
                    keys.frequency_key(ns),
                    exact_key or keys.entry_key(ns, entry_id),
                ],
                [hits, last_hit, entry_id],
            )
            for (ns, entry_id, exact_key), (hits, last_hit) in served.items()
        ]
        if self.cluster is not None:
            await asyncio.gather(*(self.scripts.touch_entry(keys=k, args=a) for k, a in calls))
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for touch_keys, touch_args in calls:
                await self.scripts.touch_entry(keys=touch_keys, args=touch_args, client=pipe)
            await pipe.execute()

    async def entries_older_than(self, ns: str, cutoff: float) -> list[str]:
        """Ids of a namespace's entries created before ``cutoff`` (epoch seconds)."""
        old: list[str] = []
        async for batch in self.shards.scan(keys.entry_pattern(ns), 1000):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hget(key, "created")
                created = await pipe.execute()
            for key, value in zip(batch, created, strict=True):
                parsed = keys.parse_entry_key(as_text(key))
                if parsed and value is not None and float(value) < cutoff:
                    old.append(parsed[1])
        return old

    async def deployment_id(self) -> str:
        """This Redis deployment's id (made by the first replica that asks)."""
        await self.client.set(keys.DEPLOYMENT, secrets.token_hex(8), nx=True)
        return as_text(await self.client.get(keys.DEPLOYMENT))


def _feedback_radius(result: Any) -> tuple[bool, float | None]:
    """A feedback script's answer: whether the entry exists, and its feedback radius."""
    if result is None:
        return False, None
    text = as_text(result)
    return True, float(text) if text else None
