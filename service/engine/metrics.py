"""Prometheus metrics of one replica (``GET /metrics``).

Counters and histograms are observed as requests finish; what a replica *holds* (entries,
index shape, sync lag, the decision stage) is read when Prometheus scrapes, by a collector,
so it is never stale. Namespace labels are bounded: the first ``max_namespaces`` namespaces
a replica sees (besides ``default``) get their own label, any later one counts under
``(other)`` (a value no namespace can take), so a tenant-per-user deployment cannot blow up
the series count.
No ``_created`` series: they double the series for a timestamp nobody graphs.
"""

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar, cast

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from service.engine.stage_times import STAGES, StageTimes
from service.tenancy.tenants import DEFAULT_NAMESPACE

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

OTHER_NAMESPACES = "(other)"
_OUTCOMES = ("hit", "miss", "bypass")
_UNCOUNTED = {DEFAULT_NAMESPACE, OTHER_NAMESPACES}  # labels the limit does not count
Series = TypeVar("Series", bound=MetricWrapperBase)

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_STAGE_BUCKETS_S = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
_SIMILARITY_BUCKETS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0)
# squared L2: the default threshold is 0.35; the audits' bands end at 0.05, 0.1, 0.2, 0.35
_DISTANCE_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


class NamespaceLabels:
    """A namespace's label value: itself for the first ``limit`` seen (``default`` not
    counted), else ``(other)``.
    ``on_new`` hears of each label value the first time it is given out."""

    def __init__(self, limit: int, on_new: Callable[[str], None] | None = None) -> None:
        self.limit = limit
        self.on_new = on_new
        self._known: set[str] = set()

    def __call__(self, ns: str) -> str:
        if ns in self._known:
            return ns
        label = ns if len(self._known - _UNCOUNTED) < self.limit else OTHER_NAMESPACES
        if label not in self._known:
            self._known.add(label)
            if self.on_new is not None:
                self.on_new(label)
        return label

    def bounded(self, per_namespace: dict[str, int]) -> dict[str, int]:
        """Counts per namespace, the ones past the limit added up under ``(other)``."""
        labelled: dict[str, int] = {}
        for ns, count in sorted(per_namespace.items()):
            label = self(ns)
            labelled[label] = labelled.get(label, 0) + count
        return labelled


class ReplicaView(Protocol):
    """What the scrape-time collector reads from the replica (``Runtime`` gives it)."""

    def entries_by_namespace(self) -> dict[str, int]: ...
    def sub_indexes_by_kind(self) -> dict[str, int]: ...
    def evictions_by_namespace(self) -> dict[str, int]: ...
    def sync_state(self) -> tuple[bool, int, float | None]: ...  # subscribed, last seq, at
    def decision_stage(self) -> str: ...
    def embedded_redis_restarts(self) -> int | None: ...  # None: it did not start one


class Metrics:
    def __init__(self, max_namespaces: int = 50) -> None:
        self.registry = CollectorRegistry()
        self.namespaces = NamespaceLabels(max_namespaces, on_new=self._start_series)
        self.redis_seq: int | None = None  # the store's sequence at the last scrape
        registry = self.registry
        self.requests = Counter(
            "dynacache_requests",
            "Lookups by namespace and outcome (hit, miss, bypass)",
            ["namespace", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "dynacache_request_latency_seconds",
            "Lookup latency by outcome",
            ["outcome"],
            registry=registry,
            buckets=_LATENCY_BUCKETS_S,
        )
        self.stages = Histogram(
            "dynacache_stage_seconds",
            "Time per stage of a lookup: embed, search (FAISS or the Redis mirror), verify "
            "(the decision stage), redis (reads and writes of entries), llm",
            ["stage"],
            registry=registry,
            buckets=_STAGE_BUCKETS_S,
        )
        self.similarity = Histogram(
            "dynacache_hit_similarity",
            "Cosine similarity of the entry served on a HIT",
            registry=registry,
            buckets=_SIMILARITY_BUCKETS,
        )
        self.nearest_distance = Histogram(
            "dynacache_nearest_distance",
            "Squared L2 distance of the nearest candidate, by outcome: the entry served on a "
            "HIT, the nearest one not served on a MISS (how close the misses came)",
            ["outcome"],
            registry=registry,
            buckets=_DISTANCE_BUCKETS,
        )
        self.tokens_saved = Counter(
            "dynacache_tokens_saved",
            "LLM tokens a HIT did not spend (where the answer had usage)",
            ["namespace"],
            registry=registry,
        )
        self.cost_saved = Counter(
            "dynacache_cost_saved_usd",
            "Price of the LLM calls HITs replaced",
            ["namespace"],
            registry=registry,
        )
        self.latency_saved = Counter(
            "dynacache_latency_saved_seconds",
            "LLM time HITs saved, less their own",
            ["namespace"],
            registry=registry,
        )
        self.outage_bypasses = Counter(
            "dynacache_redis_outage_bypasses",
            "Queries passed through to the LLM because Redis did not answer (paid calls an "
            "outage caused)",
            ["namespace"],
            registry=registry,
        )
        self.audits = Counter(
            "dynacache_audits",
            "Audited semantic HITs by verdict (right, wrong): the answer "
            "served against the LLM's fresh one",
            ["namespace", "verdict"],
            registry=registry,
        )
        self.audits_skipped = Counter(
            "dynacache_audits_skipped",
            "Audits drawn but not run, by reason: budget (the "
            "namespace's DYNACACHE_AUDIT_MAX_PER_S was spent), unreplayable (the request "
            "served cannot be sent again)",
            ["reason"],
            registry=registry,
        )
        self.shadow_requests = Counter(
            "dynacache_shadow_requests",
            "Requests answered by the LLM in shadow mode, by "
            "what the cache would have done: exact (HIT), semantic (HIT), miss",
            ["namespace", "would_be"],
            registry=registry,
        )
        self.shadow_compared = Counter(
            "dynacache_shadow_compared",
            "Would-be semantic HITs of shadow mode whose answer "
            "was compared with the LLM's, by verdict (right, wrong), distance band and "
            "decision stage",
            ["namespace", "band", "stage", "verdict"],
            registry=registry,
        )
        self.shadow_latency_saved = Counter(
            "dynacache_shadow_latency_saved_seconds",
            "LLM time the would-be HITs of shadow mode would have saved, less their own",
            ["namespace"],
            registry=registry,
        )
        self.shadow_cost_saved = Counter(
            "dynacache_shadow_cost_saved_usd",
            "Price of the LLM calls the would-be HITs of shadow mode would have replaced",
            ["namespace"],
            registry=registry,
        )
        self.stats_write_failures = Counter(
            "dynacache_stats_write_failures",
            "Stats flushes that Redis refused",
            registry=registry,
        )

        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}
        for outcome in _OUTCOMES:
            self.latency.labels(outcome)
        for stage in STAGES:
            self.stages.labels(stage)
        self.namespaces(DEFAULT_NAMESPACE)

    def _start_series(self, label: str) -> None:
        """Create a namespace's series at 0, so ``rate()`` sees its first request (a counter
        that appears at 1 looks flat to Prometheus)."""
        for outcome in _OUTCOMES:
            self.requests.labels(label, outcome)
        for counter in (self.tokens_saved, self.cost_saved, self.latency_saved):
            counter.labels(label)

    def observe(
        self,
        ns: str,
        outcome: str,
        latency_ms: float,
        times: StageTimes | None = None,
        similarity: float | None = None,
        saved_ms: float = 0.0,
        cost_saved: float = 0.0,
        tokens_saved: int = 0,
        distance: float | None = None,
    ) -> None:
        label, series = self.namespaces(ns), self._series
        if distance is not None and outcome in ("hit", "miss"):
            series(self.nearest_distance, outcome).observe(distance)
        series(self.requests, label, outcome).inc()
        series(self.latency, outcome).observe(latency_ms / 1000)
        if times is not None:
            for stage, ms in times.ms.items():
                series(self.stages, stage).observe(ms / 1000)
        if outcome == "hit":
            if similarity is not None:
                self.similarity.observe(similarity)
            series(self.latency_saved, label).inc(max(0.0, saved_ms) / 1000)
            series(self.cost_saved, label).inc(max(0.0, cost_saved))
            series(self.tokens_saved, label).inc(max(0, tokens_saved))

    def _series(self, metric: Series, *labels: str) -> Series:
        """``metric.labels(*labels)``, looked up once (prometheus-client's own lookup, six
        times per request, was a tenth of an exact HIT's Python time)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return cast(Series, child)

    def watch(self, replica: ReplicaView) -> None:
        """Report what ``replica`` holds at every scrape."""
        self.registry.register(_ReplicaCollector(replica, self))


class _ReplicaCollector(Collector):
    def __init__(self, replica: ReplicaView, metrics: Metrics) -> None:
        self.replica = replica
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        replica, labels = self.replica, self.metrics.namespaces
        entries = GaugeMetricFamily(
            "dynacache_entries", "Entries in this replica's index", labels=["namespace"]
        )
        for ns, count in labels.bounded(replica.entries_by_namespace()).items():
            entries.add_metric([ns], count)
        yield entries
        evictions = CounterMetricFamily(
            "dynacache_evictions",
            "Entries this replica evicted to make room",
            labels=["namespace"],
        )
        for ns, count in labels.bounded(replica.evictions_by_namespace()).items():
            evictions.add_metric([ns], count)
        yield evictions
        kinds = GaugeMetricFamily(
            "dynacache_index_sub_indexes",
            "FAISS sub-indexes (one per namespace and scope) by kind: flat (exact) or hnsw",
            labels=["kind"],
        )
        for kind, count in replica.sub_indexes_by_kind().items():
            kinds.add_metric([kind], count)
        yield kinds
        subscribed, last_seq, last_event_at = replica.sync_state()
        yield GaugeMetricFamily(
            "dynacache_sync_subscribed",
            "1 while the replica follows Redis's events",
            value=1 if subscribed else 0,
        )
        yield GaugeMetricFamily(
            "dynacache_sync_last_seq", "Sequence number of the last event applied", value=last_seq
        )
        redis_seq = self.metrics.redis_seq
        yield GaugeMetricFamily(
            "dynacache_sync_events_behind",
            "Events Redis has announced that this replica has not applied (NaN: Redis silent)",
            value=float("nan") if redis_seq is None else max(0, redis_seq - last_seq),
        )
        yield GaugeMetricFamily(
            "dynacache_sync_seconds_since_event",
            "Seconds since the last event was applied (NaN: none yet)",
            value=float("nan") if last_event_at is None else time.time() - last_event_at,
        )
        stage = GaugeMetricFamily(
            "dynacache_decision_stage",
            "The decision stage in force (1 for its name)",
            labels=["stage"],
        )
        stage.add_metric([replica.decision_stage()], 1)
        yield stage
        restarts = replica.embedded_redis_restarts()
        if restarts is not None:
            yield CounterMetricFamily(
                "dynacache_embedded_redis_restarts",
                "Times this replica started its own Redis again after it exited",
                value=restarts,
            )
