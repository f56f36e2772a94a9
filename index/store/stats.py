"""Telemetry counters as Redis keeps them, so that they add up across replicas and survive
restarts: per namespace ``dc:stats:{ns}`` (a hash of counters and sums) with
``dc:stats-x:{ns}`` (the fastest and slowest lookups, a sorted set that ZADD LT/GT keeps at
the extremes), the same per replica (``dc:replica:<id>``, ``dc:replica-x:<id>``, expiring
a week after the replica's last flush), and the recent near misses (``dc:near:{ns}``,
newest first, capped). What the numbers mean is ``service/engine/telemetry.py``'s."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from index.store import keys
from index.store.connection import RedisClient

NEAR_MISSES_KEPT = 200
REPLICA_STATS_TTL_S = 7 * 24 * 3600

# a stats hash as read (field names and values as Redis returns them)
RawHash = dict[Any, Any]
# what to add to a stats hash: an int is counted (HINCRBY), a float summed (HINCRBYFLOAT)
Counts = Mapping[str, int | float]
# the fastest and slowest lookup per outcome: {"hit_min": ms, "hit_max": ms, "miss_min": ...}
Extremes = dict[str, float]


@dataclass(frozen=True)
class StatsDelta:
    """One flush of a replica's telemetry: what to add per namespace and to the replica's
    own totals, the extremes seen, and the near misses (JSON), per namespace."""

    namespaces: Mapping[str, Counts]
    replica: Counts
    namespace_extremes: Mapping[str, Extremes]
    replica_extremes: Extremes
    near_misses: Mapping[str, Sequence[bytes]]


@dataclass(frozen=True)
class StoredCounts:
    """One stats hash and its extremes: a namespace's or a replica's (``owner``)."""

    owner: str
    counts: RawHash
    extremes: Extremes


class StatsLog:
    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def add(self, replica_id: str, delta: StatsDelta) -> None:
        """Add one flush, in one pipeline (one round trip; not atomic across keys)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for ns, counts in delta.namespaces.items():
                _increment(pipe, keys.stats_key(ns), counts)
            replica_key = keys.replica_stats_key(replica_id)
            _increment(pipe, replica_key, delta.replica)
            pipe.expire(replica_key, REPLICA_STATS_TTL_S)
            for ns, extremes in delta.namespace_extremes.items():
                _keep_extremes(pipe, keys.stats_extremes_key(ns), extremes)
            if delta.replica_extremes:
                extremes_key = keys.replica_extremes_key(replica_id)
                _keep_extremes(pipe, extremes_key, delta.replica_extremes)
                pipe.expire(extremes_key, REPLICA_STATS_TTL_S)
            for ns, misses in delta.near_misses.items():
                pipe.lpush(keys.near_miss_key(ns), *misses)
                pipe.ltrim(keys.near_miss_key(ns), 0, NEAR_MISSES_KEPT - 1)
            await pipe.execute()

    async def of_namespaces(self, namespaces: set[str] | None = None) -> list[StoredCounts]:
        """Every namespace's counts (a SCAN), or only those of ``namespaces``."""
        found = []
        async for key in self.client.scan_iter(match=keys.stats_pattern(), count=500):
            ns = keys.namespace_of(key.decode()) or ""
            if namespaces is None or ns in namespaces:
                counts, extremes = await self._read(key.decode(), keys.stats_extremes_key(ns))
                found.append(StoredCounts(ns, counts, extremes))
        return found

    async def of_replicas(self) -> list[StoredCounts]:
        """Every replica's counts (a SCAN; a replica's go a week after its last flush)."""
        found = []
        async for key in self.client.scan_iter(match=keys.replica_stats_pattern(), count=500):
            replica_id = keys.replica_of(key.decode())
            extremes_key = keys.replica_extremes_key(replica_id)
            found.append(StoredCounts(replica_id, *await self._read(key.decode(), extremes_key)))
        return found

    async def _read(self, counts_key: str, extremes_key: str) -> tuple[RawHash, Extremes]:
        """A stats hash and its fastest and slowest lookups, in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(counts_key)
            pipe.zrange(extremes_key, 0, -1, withscores=True)
            raw, rows = await pipe.execute()
        extremes = {
            (name.decode() if isinstance(name, bytes) else str(name)): float(score)
            for name, score in rows
        }
        return raw, extremes


def _increment(pipe: Any, key: str, counts: Counts) -> None:
    for name, value in counts.items():
        if isinstance(value, int):
            pipe.hincrby(key, name, value)
        else:
            pipe.hincrbyfloat(key, name, value)


def _keep_extremes(pipe: Any, key: str, extremes: Extremes) -> None:
    lows = {name: value for name, value in extremes.items() if name.endswith("_min")}
    highs = {name: value for name, value in extremes.items() if name.endswith("_max")}
    if lows:
        pipe.zadd(key, lows, lt=True)
    if highs:
        pipe.zadd(key, highs, gt=True)
