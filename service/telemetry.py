"""Telemetry: counters in Redis hashes (so they add up across replicas and survive restarts)
and Prometheus metrics for this process.

Counters go to ``dc:stats:{ns}`` (per namespace) and ``dc:replica:<id>`` (per replica) in
one pipeline, written off the request path: a response never waits for its own bookkeeping.
"""

import asyncio
import logging
import time
from typing import Any, Literal

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.exceptions import RedisError

from index import keys

log = logging.getLogger(__name__)

Outcome = Literal["hit", "miss", "bypass"]

_COUNTERS = ("requests", "hits", "misses", "bypasses")
_SUMS = ("hit_latency_ms_sum", "miss_latency_ms_sum", "latency_saved_ms", "cost_saved_usd")
_REPLICA_STATS_TTL_S = 7 * 24 * 3600

RawHash = dict[Any, Any]  # a stats hash as redis-py returns it (bytes to bytes)


class Telemetry:
    def __init__(self, client: "aioredis.Redis", replica_id: str) -> None:
        self.client = client
        self.replica_id = replica_id
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dynacache_requests", "Cache lookups by outcome", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "dynacache_request_latency_seconds", "Lookup latency by outcome", ["status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.recording_failures = Counter(
            "dynacache_stats_write_failures", "Stats writes that Redis refused",
            registry=self.registry,
        )  # fmt: skip
        self._pending: set[asyncio.Task[None]] = set()

    def record(
        self,
        ns: str,
        outcome: Outcome,
        latency_ms: float,
        served_entry_key: str | None = None,
        llm_ms_saved: float = 0.0,
        cost_saved: float = 0.0,
    ) -> None:
        """Count one request; the Redis write runs in the background."""
        self.requests.labels(outcome.upper()).inc()
        self.latency.labels(outcome.upper()).observe(latency_ms / 1000)
        task = asyncio.create_task(
            self._write(ns, outcome, latency_ms, served_entry_key, llm_ms_saved, cost_saved)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait for the background writes under way (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _write(
        self,
        ns: str,
        outcome: Outcome,
        latency_ms: float,
        served_entry_key: str | None,
        llm_ms_saved: float,
        cost_saved: float,
    ) -> None:
        counter = {"hit": "hits", "miss": "misses", "bypass": "bypasses"}[outcome]
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in (keys.stats_key(ns), keys.replica_stats_key(self.replica_id)):
                    pipe.hincrby(key, "requests", 1)
                    pipe.hincrby(key, counter, 1)
                    if outcome in ("hit", "miss"):
                        pipe.hincrbyfloat(key, f"{outcome}_latency_ms_sum", latency_ms)
                    if outcome == "hit":
                        pipe.hincrbyfloat(key, "latency_saved_ms", llm_ms_saved - latency_ms)
                        pipe.hincrbyfloat(key, "cost_saved_usd", cost_saved)
                pipe.expire(keys.replica_stats_key(self.replica_id), _REPLICA_STATS_TTL_S)
                if served_entry_key is not None:
                    pipe.hincrby(served_entry_key, "hits", 1)
                    pipe.hset(served_entry_key, "last_hit", time.time())
                await pipe.execute()
        except RedisError as error:
            self.recording_failures.inc()
            log.debug("stats write failed: %s", error)


def summarise(raw: RawHash) -> dict[str, Any]:
    """The numbers /v1/stats reports for one stats hash."""
    values = {name.decode(): float(value) for name, value in raw.items()}
    counts = {name: int(values.get(name, 0)) for name in _COUNTERS}
    sums = {name: values.get(name, 0.0) for name in _SUMS}
    hits, misses = counts["hits"], counts["misses"]
    lookups = hits + misses
    return {
        **counts,
        "hit_rate": hits / lookups if lookups else 0.0,
        "avg_hit_latency_ms": sums["hit_latency_ms_sum"] / hits if hits else 0.0,
        "avg_miss_latency_ms": sums["miss_latency_ms_sum"] / misses if misses else 0.0,
        "latency_saved_ms": round(sums["latency_saved_ms"], 3),
        "cost_saved_usd": round(sums["cost_saved_usd"], 6),
    }


def _add(total: RawHash, raw: RawHash) -> RawHash:
    merged = dict(total)
    for name, value in raw.items():
        merged[name] = str(float(merged.get(name, b"0")) + float(value)).encode()
    return merged


async def read_stats(
    client: "aioredis.Redis", entries_by_ns: dict[str, int], namespaces: set[str] | None = None
) -> dict[str, Any]:
    """Totals, per namespace and per replica. ``namespaces`` limits what is reported."""
    per_ns: dict[str, dict[str, Any]] = {}
    total: RawHash = {}
    async for key in client.scan_iter(match=keys.stats_pattern(), count=500):
        ns = key.decode()[len("dc:stats:{") : -1]
        if namespaces is not None and ns not in namespaces:
            continue
        raw = await client.hgetall(key)
        total = _add(total, raw)
        per_ns[ns] = {**summarise(raw), "entries": entries_by_ns.get(ns, 0)}
    for ns, count in entries_by_ns.items():
        if ns not in per_ns and (namespaces is None or ns in namespaces):
            per_ns[ns] = {**summarise({}), "entries": count}
    replicas: dict[str, dict[str, Any]] = {}
    if namespaces is None:
        async for key in client.scan_iter(match=keys.replica_stats_pattern(), count=500):
            replicas[key.decode()[len("dc:replica:") :]] = summarise(await client.hgetall(key))
    return {
        **summarise(total),
        "entries": sum(ns_stats["entries"] for ns_stats in per_ns.values()),
        "namespaces": per_ns,
        "replicas": replicas,
    }
