"""Telemetry: counters in Redis hashes (so they add up across replicas and survive restarts)
and Prometheus metrics for this process.

Counters go to ``dc:stats:{ns}`` (per namespace) and ``dc:replica:<id>`` (per replica),
aggregated in memory and written in one pipeline per interval, off the request path.
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.exceptions import RedisError

from index.store import keys

log = logging.getLogger(__name__)

Outcome = Literal["hit", "miss", "bypass"]

_COUNTERS = ("requests", "hits", "misses", "bypasses", "evictions")
_SUMS = ("hit_latency_ms_sum", "miss_latency_ms_sum", "latency_saved_ms", "cost_saved_usd")
_REPLICA_STATS_TTL_S = 7 * 24 * 3600

RawHash = dict[Any, Any]
# queues on a pipeline what HITs do to an entry:
# (pipe, ns, entry id, its exact pointer, hits, last hit)
Touch = Callable[[Any, str, str, str, int, float], Awaitable[None]]
# an entry that was served: (namespace, entry id, its exact pointer)
Served = tuple[str, str, str]


class Telemetry:
    """Counts requests in memory and adds them to Redis in one pipeline per interval.

    A per-request pipeline cost more loop time than the lookup it counted. On a failed flush
    the counts are kept and sent with the next one, so an outage loses nothing; a crash
    loses at most one interval. Hits also reach their entries then (``touch``: hit count,
    LRU/LFU scores, sliding or adaptive TTL).
    """

    def __init__(
        self,
        client: "aioredis.Redis",
        replica_id: str,
        touch: Touch,
        flush_interval_s: float = 0.2,
    ) -> None:
        self.client = client
        self.touch = touch
        self.replica_id = replica_id
        self.flush_interval_s = flush_interval_s
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
            "dynacache_stats_write_failures", "Stats flushes that Redis refused",
            registry=self.registry,
        )  # fmt: skip
        self._counts: defaultdict[str, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._entry_hits: dict[Served, tuple[int, float]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_periodically(), name="telemetry")

    async def stop(self) -> None:
        """Let a flush under way finish (never cancel it halfway), then flush the rest."""
        self._stopping.set()
        if self._flusher is not None:
            await self._flusher
        await self.flush()

    def record(
        self,
        ns: str,
        outcome: Outcome,
        latency_ms: float,
        served: Served | None = None,
        llm_ms_saved: float = 0.0,
        cost_saved: float = 0.0,
    ) -> None:
        """Count one request (in memory; flushed to Redis within the interval)."""
        self.requests.labels(outcome.upper()).inc()
        self.latency.labels(outcome.upper()).observe(latency_ms / 1000)
        counts = self._counts[ns]
        counts["requests"] += 1
        counts[{"hit": "hits", "miss": "misses", "bypass": "bypasses"}[outcome]] += 1
        if outcome in ("hit", "miss"):
            counts[f"{outcome}_latency_ms_sum"] += latency_ms
        if outcome == "hit":
            counts["latency_saved_ms"] += llm_ms_saved - latency_ms
            counts["cost_saved_usd"] += cost_saved
        if served is not None:  # its hits, LRU/LFU and TTL policy
            hits, _ = self._entry_hits.get(served, (0, 0.0))
            self._entry_hits[served] = (hits + 1, time.time())

    async def flush(self) -> None:
        """Send what was counted since the last flush."""
        counts, self._counts = self._counts, defaultdict(lambda: defaultdict(float))
        entry_hits, self._entry_hits = self._entry_hits, {}
        if not counts and not entry_hits:
            return
        replica_totals: defaultdict[str, float] = defaultdict(float)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for ns, fields in counts.items():
                    for name, value in fields.items():
                        replica_totals[name] += value
                        _increment(pipe, keys.stats_key(ns), name, value)
                replica_key = keys.replica_stats_key(self.replica_id)
                for name, value in replica_totals.items():
                    _increment(pipe, replica_key, name, value)
                pipe.expire(replica_key, _REPLICA_STATS_TTL_S)
                for (ns, entry_id, exact), (hits, last_hit) in entry_hits.items():
                    await self.touch(pipe, ns, entry_id, exact, hits, last_hit)
                await pipe.execute()
        except RedisError as error:
            self.recording_failures.inc()
            log.debug("stats flush failed, kept for the next one: %s", error)
            self._merge_back(counts, entry_hits)
        except BaseException:  # cancelled halfway: keep the counts for whoever flushes next
            self._merge_back(counts, entry_hits)
            raise

    def _merge_back(
        self,
        counts: defaultdict[str, defaultdict[str, float]],
        entry_hits: dict[Served, tuple[int, float]],
    ) -> None:
        for ns, fields in counts.items():
            for name, value in fields.items():
                self._counts[ns][name] += value
        for entry_key, (hits, last_hit) in entry_hits.items():
            earlier, _ = self._entry_hits.get(entry_key, (0, 0.0))
            self._entry_hits[entry_key] = (earlier + hits, last_hit)

    async def _flush_periodically(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # counts were kept; the flusher must outlive any one failure
                log.exception("stats flush failed")


def _increment(pipe: Any, key: str, name: str, value: float) -> None:
    if name in _COUNTERS:
        pipe.hincrby(key, name, int(value))
    else:
        pipe.hincrbyfloat(key, name, value)


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
        ns = keys.namespace_of(key.decode()) or ""
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
            replicas[keys.replica_of(key.decode())] = summarise(await client.hgetall(key))
    return {
        **summarise(total),
        "entries": sum(ns_stats["entries"] for ns_stats in per_ns.values()),
        "namespaces": per_ns,
        "replicas": replicas,
    }
