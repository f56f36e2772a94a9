"""Redis as the source of truth: entry hashes, exact pointers, the HNSW mirror, events.

Every write and delete is one Lua script (``index/store/lua/``), so that taking the
namespace's next seq (``dc:seq:{ns}``), writing the hash with that seq, its EXPIRE, the
exact-match pointer and the SPUBLISH on ``dc:ev:{ns}`` happen as one atomic step (the script
is what lets the hash carry the seq it was given, and keeps a namespace's seq order equal to
its commit order, which the replicas' catch-up relies on). Every key of a namespace carries
the ``{ns}`` hash tag, so on a Redis Cluster each script runs on the one shard holding the
namespace. Scripts are given every key they touch: what they must check (the
pointer an entry replaces, the entries eviction removes) is read first and passed in KEYS,
and a script that finds it changed answers "retry" or skips it. A full namespace makes room
right after the write, by a second script: for a moment it holds one entry over capacity.
"""

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from index.store import keys
from index.store.connection import GuardedRedisCluster, NotReplicated, primary_for
from index.store.records import (
    EXPORT_FIELDS,
    INDEX_FIELDS,
    Candidate,
    IndexedVector,
    NewEntry,
    Retention,
    StoredEntry,
    as_text,
    named,
    stored_entry,
)
from index.store.scripts import Scripts

# a script that saw its inputs change is run again with fresh ones, at most this often
_ATTEMPTS = 20


class StoreConflict(RuntimeError):
    """A write kept racing others past ``_ATTEMPTS`` tries (it changed nothing)."""


log = logging.getLogger(__name__)


def escape_tag(value: str) -> str:
    """Escape a value for a RediSearch TAG query (everything but letters and digits)."""
    return "".join(ch if ch.isalnum() else f"\\{ch}" for ch in value)


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
        self._node_clients: dict[str, aioredis.Redis] = {}
        self._shard_indexes: dict[str, str] = {}  # a primary's name -> its index's name
        self.scripts = Scripts.register(client)
        self.evictions: Counter[str] = Counter()  # entries this process evicted, per namespace

    @property
    def cluster(self) -> RedisCluster | None:
        """The cluster client, when Redis is a cluster."""
        client: object = self.client
        return client if isinstance(client, RedisCluster) else None

    async def _topology(self) -> RedisCluster | None:
        """The cluster client, having learnt the topology (it does so on its first command),
        when Redis is a cluster."""
        cluster = self.cluster
        if cluster is not None:
            await cluster.initialize()  # once; a no-op after
        return cluster

    async def _command(self, *args: Any) -> Any:
        """A raw command (RediSearch's FT.* have no typed wrapper in redis-py's asyncio API)."""
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    # RediSearch without its coordinator indexes each shard's own keys, in an index that is
    # itself a key of one slot (keys.shard_search_index): a cluster has one per primary. FT.*
    # commands go straight to that primary (routed by key, redis-py would send them to any
    # node and follow MOVED, and every few MOVED it refreshes the whole topology)
    async def _search(self, index: tuple[str, ClusterNode | None], *args: Any) -> Any:
        """Run ``FT.<command> <index name> *args`` where the index lives."""
        command, rest = args[0], args[1:]
        name, node = index
        if node is None:
            return await self._command(command, name, *rest)
        return await self.client.execute_command(  # type: ignore[no-untyped-call]
            command, name, *rest, target_nodes=node
        )

    async def _search_index_of(self, ns: str) -> tuple[str, ClusterNode | None]:
        """The search index holding ``ns``'s entries."""
        cluster = await self._topology()
        if cluster is None:
            return keys.SEARCH_INDEX, None
        return self._shard_index(cluster, primary_for(cluster, keys.sequence_key(ns)))

    async def _search_indexes(self) -> list[tuple[str, ClusterNode | None]]:
        """Every search index: one, or one per primary of a cluster."""
        cluster = await self._topology()
        if cluster is None:
            return [(keys.SEARCH_INDEX, None)]
        return [self._shard_index(cluster, node) for node in cluster.get_primaries()]

    def _shard_index(self, cluster: RedisCluster, node: ClusterNode) -> tuple[str, ClusterNode]:
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

    async def _client_of_shard(self, ns: str) -> "aioredis.Redis":
        """A client whose pipeline runs on one connection to the primary holding ``ns``
        (WAIT counts the replicas that have what that connection wrote)."""
        cluster = await self._topology()
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

    async def _durably(self, ns: str, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a write script; with ``wait_replicas``, return only once that many replicas
        of the namespace's shard have it (else NotReplicated: on the primary, not yet safe
        from its failure)."""
        if self.wait_replicas <= 0:
            return await script(keys=keys, args=args)
        cluster = await self._topology()
        if isinstance(cluster, GuardedRedisCluster):
            cluster.breaker.check()
        try:
            shard = await self._client_of_shard(ns)
            async with shard.pipeline(transaction=False) as pipe:
                await script(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
                result, acknowledged = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError) as error:
            if isinstance(cluster, GuardedRedisCluster):
                await self._forget_node_clients()  # the shard's primary may have moved
                if isinstance(error, RedisTimeoutError):
                    cluster.breaker.failed()
            raise
        if int(acknowledged) < self.wait_replicas:
            raise NotReplicated(
                f"{int(acknowledged)} of {self.wait_replicas} replica(s) had the write to "
                f"namespace {ns!r} within {self.wait_timeout_ms} ms"
            )
        return result

    async def _forget_node_clients(self) -> None:
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def aclose(self) -> None:
        await self._forget_node_clients()

    async def ping(self) -> bool:
        cluster = await self._topology()
        if cluster is None:
            return bool(await self.client.ping())
        # one answering node will do: a shard without a primary fails its own commands only
        return bool(await cluster.execute_command("PING", target_nodes=cluster.get_random_node()))

    async def enable_expiry_events(self) -> bool:
        """Turn on keyspace expiry events (on every node of a cluster, replicas too: one of
        them may be the next primary); False when a server refuses CONFIG SET."""
        cluster = await self._topology()
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

    async def indexes_partially(self) -> bool | None:
        """Whether the search module skips re-indexing a hash when no indexed field changed
        (``PARTIAL_INDEXED_DOCS``, a load-time argument; on a cluster, on every primary);
        None when it will not say. Off, every HIT's counters re-index the entry's vector:
        ~1 ms of Redis CPU each here."""
        cluster = await self._topology()
        targets: list[Any] = [None] if cluster is None else cluster.get_primaries()
        answers = []
        for node in targets:
            options = {} if node is None else {"target_nodes": node}
            try:
                reply = await self.client.execute_command(  # type: ignore[no-untyped-call]
                    "FT.CONFIG", "GET", "PARTIAL_INDEXED_DOCS", **options
                )
            except ResponseError:
                return None
            value = dict(reply).get(b"PARTIAL_INDEXED_DOCS") if isinstance(reply, dict) else None
            if value is None:
                return None
            answers.append(as_text(value).lower() in ("true", "1", "yes"))
        return all(answers)

    async def load_scripts(self) -> None:
        """Load every script on every node (a pipelined EVALSHA cannot load a missing one; a
        promoted or restarted node starts without them)."""
        cluster = await self._topology()
        for script in self.scripts.all():
            if cluster is None:
                await self.client.script_load(script.script)
            else:
                await cluster.execute_command(
                    "SCRIPT", "LOAD", script.script, target_nodes=cluster.get_nodes()
                )

    async def ensure_search_index(self) -> None:
        """Create the search index (on a cluster: each primary's) unless it exists
        (idempotent; safe for replicas racing). An index made before its TAGs were
        case-sensitive (``Alpha`` matched ``alpha`` in the fallback search, and their counts
        were added up) is made again; the entries stay, and RediSearch indexes them again
        in the background."""
        for index in await self._search_indexes():
            await self._ensure_search_index(index)

    async def _ensure_search_index(self, index: tuple[str, ClusterNode | None]) -> None:
        if await self._index_tags_fold_case(index):
            log.warning("recreating %s: its namespace tags folded case", index[0])
            with contextlib.suppress(ResponseError):  # another replica dropped it first
                await self._search(index, "FT.DROPINDEX")
        try:
            await self._search(
                index, "FT.CREATE", "ON", "HASH",
                "PREFIX", "1", keys.ENTRY_PREFIX,
                "SCHEMA",
                "ns", "TAG", "CASESENSITIVE", "SORTABLE",
                "scope", "TAG", "CASESENSITIVE",
                "seq", "NUMERIC", "SORTABLE",
                "vector", "VECTOR", "HNSW", "10",
                "TYPE", "FLOAT32", "DIM", str(self.dim), "DISTANCE_METRIC", "L2",
                "M", "16", "EF_RUNTIME", "64",
            )  # fmt: skip
        except ResponseError as error:
            if "already exists" not in str(error).lower():
                raise

    async def _index_tags_fold_case(self, index: tuple[str, ClusterNode | None]) -> bool:
        try:
            info = await self._search(index, "FT.INFO")
        except ResponseError:  # no such index yet
            return False
        for attribute in info.get(b"attributes", []) if isinstance(info, dict) else []:
            if attribute.get(b"identifier") == b"ns":
                return b"CASESENSITIVE" not in attribute.get(b"flags", [])
        return False

    # -- writes ------------------------------------------------------------------------

    async def write(self, entry: NewEntry) -> IndexedVector:
        """Store an entry (replacing the one its exact key points at); what was written."""
        xkey = keys.exact_key(entry.ns, entry.scope, entry.normalised_prompt)
        now = time.time()
        created = now if entry.created is None else entry.created
        fields: list[str | bytes | float | int] = [
            "prompt", entry.prompt,
            "response", entry.response,
            "scope", entry.scope,
            "model", entry.model,
            "vector", np.asarray(entry.vector, dtype=np.float32).tobytes(),
            "created", created,
            "hits", entry.hits,
            "last_hit", 0,
            "llm_ms", round(entry.llm_ms, 3),
            "cost", entry.cost,
            "ttl", entry.retention.ttl,
            "policy", entry.retention.ttl_policy,
            "ttl_max", entry.retention.ttl_max,
            "completion", orjson.dumps(entry.completion) if entry.completion else "",
        ]  # fmt: skip
        ns, retention, new_id = entry.ns, entry.retention, keys.new_entry_id()
        for _ in range(_ATTEMPTS):
            seen = as_text(await self.client.get(xkey))
            result = await self._durably(
                ns,
                self.scripts.write_entry,
                keys=[keys.sequence_key(ns), xkey, keys.recency_key(ns), keys.frequency_key(ns),
                      keys.entry_key(ns, new_id), keys.entry_key(ns, seen or new_id)],
                args=[ns, new_id, seen, retention.ttl, keys.events_channel(ns), self.origin, now,
                      keys.NAMESPACES_CHANNEL, *fields],
            )  # fmt: skip
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
                victim_keys += [victim_key, keys.feedback_key(ns, victim),
                                as_text(pointer) or victim_key]  # fmt: skip
            left, evicted = await self.scripts.evict_entries(
                keys=[keys.sequence_key(ns), keys.recency_key(ns), keys.frequency_key(ns),
                      keys.stats_key(ns), *victim_keys],
                args=[ns, keys.events_channel(ns), self.origin, retention.capacity,
                      retention.eviction, *victims],
            )  # fmt: skip
            self.evictions[ns] += int(evicted)
            if int(left) <= 0:
                return
        raise StoreConflict(f"making room in namespace {ns!r} kept racing other writes")

    async def record_feedback(
        self, ns: str, entry_id: str, correct: bool, radius: float, report: dict[str, Any]
    ) -> tuple[bool, float | None]:
        """Keep a report on an entry's hit; a wrong one narrows the entry's feedback radius
        to ``radius`` (never widens it). ``(entry exists, its feedback radius)``."""
        result = await self.scripts.record_feedback(
            keys=[keys.entry_key(ns, entry_id), keys.feedback_key(ns, entry_id)],
            args=["1" if correct else "0", radius, orjson.dumps(report)],
        )
        if result is None:
            return False, None
        text = as_text(result)
        return True, float(text) if text else None

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
        async for batch in self._scan(keys.entry_pattern(ns), 1000):
            deleted += await self.client.unlink(*batch)
        async for batch in self._scan(keys.exact_pattern(ns), 1000):
            await self.client.unlink(*batch)
        await self.client.delete(keys.recency_key(ns), keys.frequency_key(ns))
        seq = await self.scripts.announce_flush(
            keys=[keys.sequence_key(ns)],
            args=[ns, keys.events_channel(ns), self.origin, keys.NAMESPACES_CHANNEL],
        )
        return deleted, int(seq)

    async def _scan(self, pattern: str, page_size: int) -> AsyncIterator[list[bytes]]:
        """The keys matching ``pattern``, in batches of up to ``page_size``."""
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=page_size):
            batch.append(key)
            if len(batch) >= page_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- reads -------------------------------------------------------------------------

    async def entry_ids_by_namespace(self, page_size: int = 1000) -> dict[str, np.ndarray]:
        """Every live entry's FAISS id, by namespace (a SCAN of keys, no values read), as
        sorted int64 arrays: at a million entries, ids as Python strings in a dict held
        ~250 MB at the peak of a replica's reconcile, and the allocator kept most of it."""
        found: dict[str, array[int]] = {}
        async for batch in self._scan(keys.entry_pattern(), page_size):
            for key in batch:
                parsed = keys.parse_entry_key(as_text(key))
                if parsed is not None:
                    found.setdefault(parsed[0], array("q")).append(keys.faiss_id(parsed[1]))
        return {ns: np.unique(np.frombuffer(fids, np.int64)) for ns, fids in found.items()}

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
                [keys.entry_key(ns, entry_id), keys.recency_key(ns), keys.frequency_key(ns),
                 exact_key or keys.entry_key(ns, entry_id)],
                [hits, last_hit, entry_id],
            )
            for (ns, entry_id, exact_key), (hits, last_hit) in served.items()
        ]  # fmt: skip
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
        async for batch in self._scan(keys.entry_pattern(ns), 1000):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hget(key, "created")
                created = await pipe.execute()
            for key, value in zip(batch, created, strict=True):
                parsed = keys.parse_entry_key(as_text(key))
                if parsed and value is not None and float(value) < cutoff:
                    old.append(parsed[1])
        return old

    async def knn(self, ns: str, scope: str, vector: np.ndarray, k: int) -> list[Candidate]:
        """Nearest entries from the RediSearch HNSW mirror (the fallback search)."""
        query = (
            f"(@ns:{{{escape_tag(ns)}}} @scope:{{{escape_tag(scope)}}})"
            f"=>[KNN {k} @vector $vec AS dist]"
        )
        reply = await self._search(
            await self._search_index_of(ns), "FT.SEARCH", query,
            "PARAMS", "2", "vec", np.asarray(vector, dtype=np.float32).tobytes(),
            "SORTBY", "dist", "ASC", "RETURN", "1", "dist", "LIMIT", "0", str(k),
            "DIALECT", "2",
        )  # fmt: skip
        candidates = []
        for row in reply[b"results"]:
            parsed = keys.parse_entry_key(as_text(row[b"id"]))
            if parsed:
                distance = float(row[b"extra_attributes"][b"dist"])
                candidates.append(Candidate(parsed[1], distance))
        return candidates

    async def namespace_seqs(self) -> dict[str, int]:
        """Every namespace Redis has a sequence for, with its current seq (a SCAN)."""
        names: list[str] = []
        async for batch in self._scan(keys.sequence_pattern(), 1000):
            names += [ns for key in batch if (ns := keys.namespace_of(as_text(key)))]
        return await self.seqs_of(names)

    async def seqs_of(self, namespaces: Sequence[str]) -> dict[str, int]:
        """The current seq of each of those namespaces (0: none yet)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for ns in namespaces:
                pipe.get(keys.sequence_key(ns))
            values = await pipe.execute()
        return {ns: int(value or 0) for ns, value in zip(namespaces, values, strict=True)}

    async def deployment_id(self) -> str:
        """This Redis deployment's id (made by the first replica that asks)."""
        await self.client.set(keys.DEPLOYMENT, secrets.token_hex(8), nx=True)
        return as_text(await self.client.get(keys.DEPLOYMENT))

    async def adopt_legacy_sequence(self) -> None:
        """Once, after an upgrade from the global ``dc:seq``: every namespace's sequence
        starts above the numbers its entries already carry (a replica orders changes by
        seq, so a namespace restarting at 1 would see its new writes as older than its old
        ones). Idempotent: SET NX, then the old key is renamed away."""
        if self.cluster is not None or not await self.client.exists(keys.LEGACY_SEQUENCE):
            return
        legacy = int(await self.client.get(keys.LEGACY_SEQUENCE) or 0)
        namespaces = set(await self.entry_ids_by_namespace())
        for ns in namespaces:
            await self.client.set(keys.sequence_key(ns), legacy, nx=True)
        with contextlib.suppress(ResponseError):  # another replica renamed it first
            await self.client.rename(keys.LEGACY_SEQUENCE, f"{keys.LEGACY_SEQUENCE}:adopted")
        log.info("per-namespace sequences start at %d for %d namespace(s)", legacy, len(namespaces))

    async def scan_vectors(self, page_size: int) -> AsyncIterator[list[IndexedVector]]:
        """Every entry's vector, a page at a time (for a full rebuild)."""
        async for batch in self._scan(keys.entry_pattern(), page_size):
            yield await self.load_vectors(batch)

    async def vectors_since(
        self, ns: str, seq: int, page_size: int
    ) -> AsyncIterator[list[IndexedVector]]:
        """A namespace's entries written after ``seq``, oldest first (catch-up, and an
        affine replica's load of a namespace). Paged by seq, not by offset: a page at offset
        N costs Redis O(N) (at 250k entries the pages passed the 0.5 s timeout halfway, the
        feed was dropped and the load began again, for ever)."""
        index = await self._search_index_of(ns)
        while True:
            reply = await self._search(
                index, "FT.SEARCH",
                f"@ns:{{{escape_tag(ns)}}} @seq:[({seq} +inf]",
                "RETURN", "1", "seq", "SORTBY", "seq", "ASC", "LIMIT", "0", str(page_size),
            )  # fmt: skip
            rows = reply[b"results"]
            if not rows:
                return
            yield await self.load_vectors([row[b"id"] for row in rows])
            seq = max(int(row[b"extra_attributes"][b"seq"]) for row in rows)
            if len(rows) < page_size:
                return

    async def load_vectors(self, entry_keys: Sequence[bytes | str]) -> list[IndexedVector]:
        """Index fields of the given entry keys; keys that are gone are left out."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in entry_keys:
                pipe.hmget(key, list(INDEX_FIELDS))
            rows = await pipe.execute()
        loaded = []
        for key, values in zip(entry_keys, rows, strict=True):
            row = named(INDEX_FIELDS, values)
            parsed = keys.parse_entry_key(as_text(key))
            vector = row["vector"]
            if parsed is None or vector is None or len(vector) != self.dim * 4:
                continue
            loaded.append(
                IndexedVector(
                    ns=as_text(row["ns"]),
                    scope=as_text(row["scope"]),
                    entry_id=parsed[1],
                    vector=np.frombuffer(vector, dtype=np.float32),
                    seq=int(row["seq"] or 0),
                    exact_key=as_text(row["xkey"]),
                )
            )
        return loaded

    async def count_by_namespace(self) -> dict[str, int]:
        """Live entries per namespace, as the HNSW mirror counts them."""
        counts: Counter[str] = Counter()  # a namespace lives on one shard: no overlap
        for index in await self._search_indexes():
            reply = await self._search(
                index, "FT.AGGREGATE", "*",
                "GROUPBY", "1", "@ns", "REDUCE", "COUNT", "0", "AS", "n",
            )  # fmt: skip
            for row in reply[b"results"]:
                attrs = row[b"extra_attributes"]
                counts[as_text(attrs[b"ns"])] += int(attrs[b"n"])
        return dict(counts)

    async def count_in(self, namespaces: Sequence[str]) -> dict[str, int]:
        """Live entries of each of those namespaces, as the mirror counts them: a tag query
        per namespace (~0.13 µs per entry here, a quarter of what grouping every entry of
        the index costs, and no longer than one namespace's count holds Redis)."""
        counts = {}
        for ns in namespaces:
            reply = await self._search(
                await self._search_index_of(ns),
                "FT.SEARCH", f"@ns:{{{escape_tag(ns)}}}", "LIMIT", "0", "0",
            )  # fmt: skip
            counts[ns] = int(reply[b"total_results"] if isinstance(reply, dict) else reply[0])
        return counts

    async def most_served(self, ns: str, count: int) -> list[tuple[str, str, int]]:
        """``(entry id, prompt, hits)`` of the namespace's most-served live entries, most
        first (the LFU order: uses, the write counting as the first)."""
        ranked: list[Any] = await self.client.zrevrange(keys.frequency_key(ns), 0, 4 * count)
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id in ranked:
                pipe.hmget(keys.entry_key(ns, as_text(entry_id)), ["prompt", "hits"])
            rows = await pipe.execute()
        served = [
            (as_text(entry_id), as_text(prompt), int(hits or 0))
            for entry_id, (prompt, hits) in zip(ranked, rows, strict=True)
            if prompt is not None and int(hits or 0) > 0
        ]
        return served[:count]

    async def near_misses(self, ns: str) -> list[dict[str, Any]]:
        """The recent misses whose nearest candidate was not served (newest first)."""
        rows: list[Any] = await self.client.lrange(keys.near_miss_key(ns), 0, -1)
        return [orjson.loads(row) for row in rows]

    async def prompts_of(self, ns: str, entry_ids: Sequence[str]) -> dict[str, str]:
        """The prompts of those entries that are still live."""
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.hget(keys.entry_key(ns, entry_id), "prompt")
            prompts = await pipe.execute()
        return {
            entry_id: as_text(prompt)
            for entry_id, prompt in zip(entry_ids, prompts, strict=True)
            if prompt is not None
        }

    async def dump(self, ns: str, vectors: bool, page_size: int = 500) -> AsyncIterator[
        list[dict[str, Any]]
    ]:  # fmt: skip
        """A namespace's live entries, a page at a time: ``EXPORT_FIELDS`` (and ``vector``)
        decoded, with ``expires_in`` (seconds left; None: never expires)."""
        fields = [*EXPORT_FIELDS, "vector"] if vectors else list(EXPORT_FIELDS)
        async for batch in self._scan(keys.entry_pattern(ns), page_size):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hmget(key, fields)
                    pipe.pttl(key)
                replies = await pipe.execute()
            page = []
            for values, pttl in zip(replies[::2], replies[1::2], strict=True):
                row = named(tuple(fields), values)
                if row["prompt"] is None:  # expired between the scan and the read
                    continue
                entry: dict[str, Any] = {
                    name: row[name] if name == "vector" else as_text(row[name]) for name in fields
                }
                entry["expires_in"] = int(pttl) / 1000 if int(pttl) > 0 else None
                page.append(entry)
            yield page
