"""Telemetry: counters in Redis hashes (so they add up across replicas and survive restarts)
and this process's Prometheus metrics (``service/engine/metrics.py``).

Counters go to ``dc:stats:{ns}`` (per namespace) and ``dc:replica:<id>`` (per replica),
aggregated in memory and written in one pipeline per interval, off the request path. Each
hash also counts lookups per latency bucket (``hit_ms_le_25`` ...), so percentiles add up
across replicas too; and the misses that came closest to a hit go to ``dc:near:{ns}``
(newest first, capped), for what a threshold change would gain. ``index/store/stats.py``
reads and writes them.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from index.store.errors import RedisError
from index.store.stats import Counts, Extremes, RawHash, StatsDelta, StatsLog
from service.engine.metrics import Metrics
from service.engine.stage_times import StageTimes

log = logging.getLogger(__name__)

Outcome = Literal["hit", "miss", "bypass"]

# outage_bypasses: the bypasses Redis caused by not answering (each a paid LLM call)
_COUNTERS = (
    "requests",
    "hits",
    "misses",
    "bypasses",
    "outage_bypasses",
    "evictions",
    "tokens_saved",
)
_SUMS = ("hit_latency_ms_sum", "miss_latency_ms_sum", "latency_saved_ms", "cost_saved_usd")
# upper bounds (ms) of the latency buckets counted per outcome; the last one is open
LATENCY_BUCKETS_MS = (
    1,
    2.5,
    5,
    7.5,
    10,
    15,
    25,
    50,
    100,
    250,
    500,
    1000,
    1500,
    2000,
    3000,
    4000,
    5000,
    7500,
    10000,
    math.inf,
)  # fine where HITs (a few ms) and LLM calls (1-5 s) fall
# an entry that was served: (namespace, entry id, its exact pointer)
Served = tuple[str, str, str]
# applies to entries what their HITs do: {served entry: (hits, last hit)}
Touch = Callable[[Mapping[Served, tuple[int, float]]], Awaitable[None]]


@dataclass(frozen=True)
class NearMiss:
    """A MISS whose nearest candidate was not served (too far, or refused by the judge)."""

    prompt: str
    nearest_id: str
    distance: float
    confidence: float | None = None
    personal: bool = False  # asked in per-user scope: its prompts are redacted (insights)


class Telemetry:
    """Counts requests in memory and adds them to Redis in one pipeline per interval.

    A per-request pipeline cost more loop time than the lookup it counted. On a failed flush
    the counts are kept and sent with the next one, so an outage loses nothing; a crash
    loses at most one interval. Hits also reach their entries then (``touch``: hit count,
    LRU/LFU scores, sliding or adaptive TTL).
    """

    def __init__(
        self,
        stats: StatsLog,
        replica_id: str,
        touch: Touch,
        flush_interval_s: float = 0.2,
        metrics: Metrics | None = None,
    ) -> None:
        self.stats = stats
        self.touch = touch
        self.replica_id = replica_id
        self.flush_interval_s = flush_interval_s
        self.metrics = metrics or Metrics()
        self._near_misses: defaultdict[str, list[NearMiss]] = defaultdict(list)
        self._counts: defaultdict[str, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._extremes: defaultdict[str, Extremes] = defaultdict(dict)
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
        tokens_saved: int = 0,
        similarity: float | None = None,
        times: StageTimes | None = None,
        near_miss: NearMiss | None = None,
        outage: bool = False,
        distance: float | None = None,
    ) -> None:
        """Count one request (in memory; flushed to Redis within the interval). ``outage``:
        a bypass because Redis did not answer (kept in memory until Redis is back)."""
        saved_ms = llm_ms_saved - latency_ms
        self.metrics.observe(
            ns,
            outcome,
            latency_ms,
            times,
            similarity,
            saved_ms,
            cost_saved,
            tokens_saved,
            distance,
        )
        counts = self._counts[ns]
        counts["requests"] += 1
        counts[{"hit": "hits", "miss": "misses", "bypass": "bypasses"}[outcome]] += 1
        if outage:
            counts["outage_bypasses"] += 1
            self.metrics.outage_bypasses.labels(self.metrics.namespaces(ns)).inc()
        if outcome in ("hit", "miss"):
            counts[f"{outcome}_latency_ms_sum"] += latency_ms
            counts[latency_bucket(outcome, latency_ms)] += 1
            widen(self._extremes[ns], outcome, latency_ms)
        if outcome == "hit":
            counts["latency_saved_ms"] += saved_ms
            counts["cost_saved_usd"] += cost_saved
            counts["tokens_saved"] += tokens_saved
        if near_miss is not None:
            self._near_misses[ns].append(near_miss)
        if served is not None:  # its hits, LRU/LFU and TTL policy
            hits, _ = self._entry_hits.get(served, (0, 0.0))
            self._entry_hits[served] = (hits + 1, time.time())

    async def flush(self) -> None:
        """Send what was counted since the last flush."""
        counts, self._counts = self._counts, defaultdict(lambda: defaultdict(float))
        extremes, self._extremes = self._extremes, defaultdict(dict)
        entry_hits, self._entry_hits = self._entry_hits, {}
        near_misses, self._near_misses = self._near_misses, defaultdict(list)
        if not counts and not entry_hits:
            return
        try:
            await self.stats.add(self.replica_id, _delta(counts, extremes, near_misses))
        except RedisError as error:
            self.metrics.stats_write_failures.inc()
            log.debug("stats flush failed, kept for the next one: %s", error)
            self._merge_back(counts, entry_hits, extremes)
            return
        except BaseException:  # cancelled halfway: keep the counts for whoever flushes next
            self._merge_back(counts, entry_hits, extremes)
            raise
        try:
            if entry_hits:
                await self.touch(entry_hits)
        except RedisError as error:
            self.metrics.stats_write_failures.inc()
            log.debug("hit counts not applied, kept for the next flush: %s", error)
            self._merge_back({}, entry_hits)
        except BaseException:
            self._merge_back({}, entry_hits)
            raise

    def _merge_back(
        self,
        counts: Mapping[str, Mapping[str, float]],
        entry_hits: Mapping[Served, tuple[int, float]],
        extremes: Mapping[str, Extremes] | None = None,
    ) -> None:
        for ns, fields in counts.items():
            for name, value in fields.items():
                self._counts[ns][name] += value
        for ns, found in (extremes or {}).items():
            self._extremes[ns] = merged_extremes(self._extremes[ns], found)
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


def _delta(
    counts: Mapping[str, Mapping[str, float]],
    extremes: Mapping[str, Extremes],
    near_misses: Mapping[str, list[NearMiss]],
) -> StatsDelta:
    """What one flush adds: the namespaces' counts, their sum as the replica's, the extremes
    (the replica's the widest of its namespaces') and the near misses (lost on a failed
    flush: they are a sample)."""
    replica_totals: defaultdict[str, float] = defaultdict(float)
    for fields in counts.values():
        for name, value in fields.items():
            replica_totals[name] += value
    replica_extremes: Extremes = {}
    for found in extremes.values():
        replica_extremes = merged_extremes(replica_extremes, found)
    return StatsDelta(
        namespaces={ns: _typed(fields) for ns, fields in counts.items()},
        replica=_typed(replica_totals),
        namespace_extremes=extremes,
        replica_extremes=replica_extremes,
        near_misses={
            ns: [orjson.dumps(asdict(miss)) for miss in misses]
            for ns, misses in near_misses.items()
        },
    )


def _typed(fields: Mapping[str, float]) -> Counts:
    """Counters as ints (counted), sums as floats (summed)."""
    return {
        name: int(value) if name in _COUNTERS or "_ms_le_" in name else value
        for name, value in fields.items()
    }


def latency_bucket(outcome: str, latency_ms: float) -> str:
    """The stats field counting ``outcome`` lookups in ``latency_ms``'s bucket."""
    bound = next(b for b in LATENCY_BUCKETS_MS if latency_ms <= b)
    return f"{outcome}_ms_le_{'inf' if bound == math.inf else f'{bound:g}'}"


def widen(extremes: Extremes, outcome: str, latency_ms: float) -> None:
    """Let ``extremes`` hold ``latency_ms`` as ``outcome``'s fastest or slowest if it is."""
    low, high = f"{outcome}_min", f"{outcome}_max"
    extremes[low] = min(extremes.get(low, math.inf), latency_ms)
    extremes[high] = max(extremes.get(high, -math.inf), latency_ms)


def merged_extremes(first: Mapping[str, float], second: Mapping[str, float]) -> Extremes:
    """The fastest and slowest of both."""
    merged = dict(first)
    for name, value in second.items():
        pick = min if name.endswith("_min") else max
        merged[name] = pick(merged[name], value) if name in merged else value
    return merged


def percentiles(
    bucket_counts: list[float],
    quantiles: tuple[float, ...],
    bounds: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Percentiles (ms) from counts per ``LATENCY_BUCKETS_MS`` bucket, interpolated linearly
    inside a bucket as Prometheus's ``histogram_quantile`` does (the open last bucket
    answers its lower bound), then held within ``bounds`` (the fastest and slowest seen):
    interpolation alone put every percentile of MISSes that all took 1,010 ms at 1,250 to
    1,495 ms, the middle and top of their 1,000-1,500 ms bucket."""
    total = sum(bucket_counts)
    found: dict[str, float] = {}
    for quantile in quantiles:
        name = f"p{quantile * 100:g}"
        if total == 0:
            found[name] = 0.0
            continue
        rank, below, lower = quantile * total, 0.0, 0.0
        for bound, count in zip(LATENCY_BUCKETS_MS, bucket_counts, strict=True):
            if below + count >= rank and count > 0:
                upper = lower if bound == math.inf else bound
                value = lower + (upper - lower) * (rank - below) / count
                if bounds is not None:
                    value = min(max(value, bounds[0]), bounds[1])
                found[name] = round(value, 3)
                break
            below, lower = below + count, bound
    return found


def summarise(raw: RawHash, extremes: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The numbers /v1/stats reports for one stats hash (and its fastest and slowest)."""
    extremes = extremes or {}
    values = {name.decode(): float(value) for name, value in raw.items()}
    counts = {name: int(values.get(name, 0)) for name in _COUNTERS}
    sums = {name: values.get(name, 0.0) for name in _SUMS}
    hits, misses = counts["hits"], counts["misses"]
    lookups = hits + misses
    latency_percentiles = {
        outcome: percentiles(
            [values.get(latency_bucket(outcome, bound), 0.0) for bound in LATENCY_BUCKETS_MS],
            (0.5, 0.95, 0.99),
            _bounds(extremes, outcome),
        )
        for outcome in ("hit", "miss")
    }
    return {
        **counts,
        "hit_rate": hits / lookups if lookups else 0.0,
        "avg_hit_latency_ms": sums["hit_latency_ms_sum"] / hits if hits else 0.0,
        "avg_miss_latency_ms": sums["miss_latency_ms_sum"] / misses if misses else 0.0,
        "latency_saved_ms": round(sums["latency_saved_ms"], 3),
        "cost_saved_usd": round(sums["cost_saved_usd"], 6),
        "latency_ms": latency_percentiles,
    }


def _bounds(extremes: Mapping[str, float], outcome: str) -> tuple[float, float] | None:
    low, high = extremes.get(f"{outcome}_min"), extremes.get(f"{outcome}_max")
    return (low, high) if low is not None and high is not None else None


def _add(total: RawHash, raw: RawHash) -> RawHash:
    merged = dict(total)
    for name, value in raw.items():
        merged[name] = str(float(merged.get(name, b"0")) + float(value)).encode()
    return merged


async def read_stats(
    stats: StatsLog, entries_by_ns: dict[str, int], namespaces: set[str] | None = None
) -> dict[str, Any]:
    """Totals, per namespace and per replica. ``namespaces`` limits what is reported."""
    per_ns: dict[str, dict[str, Any]] = {}
    total: RawHash = {}
    total_extremes: Extremes = {}
    for stored in await stats.of_namespaces(namespaces):
        ns, raw, extremes = stored.owner, stored.counts, stored.extremes
        total = _add(total, raw)
        total_extremes = merged_extremes(total_extremes, extremes)
        per_ns[ns] = {**summarise(raw, extremes), "entries": entries_by_ns.get(ns, 0)}
    for ns, count in entries_by_ns.items():
        if ns not in per_ns and (namespaces is None or ns in namespaces):
            per_ns[ns] = {**summarise({}), "entries": count}
    replicas: dict[str, dict[str, Any]] = {}
    if namespaces is None:
        for stored in await stats.of_replicas():
            replicas[stored.owner] = summarise(stored.counts, stored.extremes)
    return {
        **summarise(total, total_extremes),
        "entries": sum(ns_stats["entries"] for ns_stats in per_ns.values()),
        "namespaces": per_ns,
        "replicas": replicas,
    }
